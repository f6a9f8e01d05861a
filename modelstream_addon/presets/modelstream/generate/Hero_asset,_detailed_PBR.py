import bpy

settings = bpy.context.scene.modelstream
settings.model_version = ""
settings.face_limit = 0
settings.texture = True
settings.pbr = True
settings.texture_quality = "detailed"
settings.quad = False
settings.auto_size = False
settings.placement = "CURSOR"
settings.size_mode = "KEEP"
settings.target_size = 1.0
settings.shading = "SMOOTH"
