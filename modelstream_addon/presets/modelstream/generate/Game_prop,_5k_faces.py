import bpy

settings = bpy.context.scene.modelstream
settings.model_version = ""
settings.face_limit = 5000
settings.texture = True
settings.pbr = True
settings.texture_quality = "standard"
settings.quad = False
settings.auto_size = True
settings.placement = "CURSOR"
settings.size_mode = "KEEP"
settings.target_size = 1.0
settings.shading = "KEEP"
