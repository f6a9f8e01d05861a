"""The core: everything that needs no Blender. The HTTP client (`client`, `netguard`), the
services it speaks (`services`), the task builders (`tasks`, `model_tasks`), file checks
(`imagefile`, `formats`, `paths`), the job engine (`job`, `worker`, `engine`), the history
file (`history`), the errors (`errors`) and the jobs list's columns (`joblist`).

Nothing here imports bpy or the Blender side (`..blender`); tests/test_layers.py holds that
for every module in this folder. Where the core must reach up, it takes a callable.
"""
