import bpy

settings = bpy.context.scene.modelstream
settings.model_version = ""
settings.face_limit = 2000
settings.texture = False
settings.pbr = False
settings.texture_quality = "standard"
settings.quad = True
settings.auto_size = False
settings.placement = "CURSOR"
settings.size_mode = "FIT"
settings.target_size = 1.0
settings.shading = "FLAT"
