"""A small skeleton fitted to a mesh's bounds, skin weights, and preset animations, written
as one glTF skin: what a rig or retarget task delivers. Blender's glTF importer turns it into
an Armature with the mesh skinned to it, and one Action per animation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gltf import ARRAY_BUFFER, Builder, Model

BIPED = "biped"
# Legged rig types: pairs of legs hung from the spine.
LEG_PAIRS = {"quadruped": 2, "hexapod": 3, "octopod": 4}
# Each preset the SDK names (tripo3d.Animation), and the rig type it moves.
PRESETS = {f"preset:{name}": BIPED for name in (
    "idle", "walk", "run", "dive", "climb", "jump", "slash", "shoot", "hurt", "fall", "turn")}
PRESETS.update({"preset:quadruped:walk": "quadruped", "preset:hexapod:walk": "hexapod",
                "preset:octopod:walk": "octopod", "preset:serpentine:march": "serpentine",
                "preset:aquatic:march": "aquatic"})
# Biped presets: (joint, axis, degrees, cycles per clip, phase in cycles) per swing, and how
# far the hips travel (x, y, z in heights) over the clip when not animated in place.
_BIPED_MOVES = {
    "idle": ([("Spine", 0, 3, 1, 0), ("Head", 1, 8, 1, 0.25)], (0, 0, 0)),
    "walk": ([("LeftUpLeg", 0, 25, 1, 0), ("RightUpLeg", 0, 25, 1, 0.5),
              ("LeftLeg", 0, 15, 1, 0.25), ("RightLeg", 0, 15, 1, 0.75),
              ("LeftArm", 0, 20, 1, 0.5), ("RightArm", 0, 20, 1, 0)], (0, 0, 0.6)),
    "run": ([("LeftUpLeg", 0, 45, 2, 0), ("RightUpLeg", 0, 45, 2, 0.5),
             ("LeftLeg", 0, 40, 2, 0.25), ("RightLeg", 0, 40, 2, 0.75),
             ("LeftArm", 0, 40, 2, 0.5), ("RightArm", 0, 40, 2, 0), ("Spine", 0, 10, 2, 0)],
            (0, 0, 2.0)),
    "dive": ([("Spine", 0, 60, 0.5, 0), ("LeftArm", 2, 70, 0.5, 0), ("RightArm", 2, -70, 0.5, 0)],
             (0, -0.3, 1.0)),
    "climb": ([("LeftArm", 2, 60, 1, 0), ("RightArm", 2, -60, 1, 0.5),
               ("LeftUpLeg", 0, 40, 1, 0.5), ("RightUpLeg", 0, 40, 1, 0)], (0, 0.8, 0)),
    "jump": ([("LeftUpLeg", 0, 40, 0.5, 0), ("RightUpLeg", 0, 40, 0.5, 0),
              ("LeftLeg", 0, -60, 0.5, 0), ("RightLeg", 0, -60, 0.5, 0)], (0, 0.5, 0)),
    "slash": ([("RightArm", 0, -90, 0.5, 0), ("RightForeArm", 0, -40, 0.5, 0),
               ("Spine", 1, 30, 0.5, 0)], (0, 0, 0)),
    "shoot": ([("RightArm", 0, -80, 0.25, 0), ("LeftArm", 0, -60, 0.25, 0),
               ("Head", 1, 10, 0.5, 0)], (0, 0, 0)),
    "hurt": ([("Spine", 0, -20, 0.5, 0), ("Head", 0, 25, 0.5, 0)], (0, 0, -0.2)),
    "fall": ([("Spine", 0, 80, 0.25, 0), ("LeftArm", 2, 80, 0.5, 0),
              ("RightArm", 2, -80, 0.5, 0)], (0, -0.4, 0)),
    "turn": ([("Hips", 1, 90, 0.25, 0), ("Head", 1, 20, 0.5, 0)], (0, 0, 0)),
}
CLIP_SECONDS, KEYS = 1.0, 13
_CHUNK = 1 << 15


@dataclass
class Joint:
    name: str
    parent: int | None  # index of the parent joint
    position: np.ndarray  # world space, bind pose


def skeleton(positions: np.ndarray, rig_type: str, spec: str) -> list[Joint]:
    """Joints fitted to the mesh's bounding box: a biped's hips, spine, head, arms and legs,
    or a spine along the longest horizontal axis with the rig type's pairs of legs. The
    mixamo spec names bones as Mixamo does."""
    low, high = positions.min(axis=0), positions.max(axis=0)
    size = np.maximum(high - low, 1e-6)
    joints: list[Joint] = []

    def add(name: str, parent: int | None, x: float, y: float, z: float) -> int:
        joints.append(Joint(name, parent, low + size * np.array([x, y, z])))
        return len(joints) - 1

    if rig_type == BIPED:
        hips = add("Hips", None, 0.5, 0.5, 0.5)
        spine = add("Spine", hips, 0.5, 0.68, 0.5)
        add("Head", spine, 0.5, 0.88, 0.5)
        for side, x in (("Left", 0.5), ("Right", -0.5)):  # a glTF model faces +Z
            arm = add(f"{side}Arm", spine, 0.5 + x * 0.3, 0.76, 0.5)
            add(f"{side}ForeArm", arm, 0.5 + x * 0.75, 0.76, 0.5)
            leg = add(f"{side}UpLeg", hips, 0.5 + x * 0.2, 0.45, 0.5)
            add(f"{side}Leg", leg, 0.5 + x * 0.2, 0.2, 0.5)
    else:
        along = 0 if size[0] >= size[2] else 2
        spine = [None]
        for i in range(5):
            at = [0.5, 0.6, 0.5]
            at[along] = 0.1 + 0.2 * i
            spine.append(add("Root" if i == 0 else f"Spine{i}", spine[-1], *at))
        for pair in range(LEG_PAIRS.get(rig_type, 0)):
            hip = spine[1 + round(pair * 4 / max(1, LEG_PAIRS[rig_type] - 1))]
            for side, offset in (("L", 0.2), ("R", -0.2)):
                at = (joints[hip].position - low) / size
                at[2 - along] = 0.5 + offset * 2
                upper = add(f"Leg{pair}{side}", hip, at[0], 0.45, at[2])
                add(f"Foot{pair}{side}", upper, at[0], 0.05, at[2])
    if spec == "mixamo":
        for joint in joints:
            joint.name = f"mixamorig:{joint.name}"
    return joints


def weights(positions: np.ndarray, joints: list[Joint]) -> tuple[np.ndarray, np.ndarray]:
    """JOINTS_0 and WEIGHTS_0: each vertex bound to its two nearest bones (joint to child
    segments; a leaf is a point), weighted by inverse square distance, summing to one."""
    children = {j.parent: i for i, j in enumerate(joints) if j.parent is not None}
    starts = np.array([j.position for j in joints])
    span = np.array([joints[children[i]].position if i in children else j.position
                     for i, j in enumerate(joints)]) - starts
    length2 = np.maximum((span ** 2).sum(axis=1), 1e-12)
    joint_ids = np.zeros((len(positions), 4), np.uint16)
    shares = np.zeros((len(positions), 4), np.float32)
    for at in range(0, len(positions), _CHUNK):  # bounded memory for a big imported mesh
        rel = positions[at:at + _CHUNK, None, :] - starts[None]
        t = np.clip((rel * span[None]).sum(axis=2) / length2, 0, 1)
        distance = np.linalg.norm(rel - t[..., None] * span[None], axis=2)
        nearest = np.argsort(distance, axis=1)[:, :2]
        inverse = 1 / (np.take_along_axis(distance, nearest, axis=1) + 1e-4) ** 2
        joint_ids[at:at + _CHUNK, :2] = nearest
        shares[at:at + _CHUNK, 1] = inverse[:, 1] / inverse.sum(axis=1)
    shares[:, 0] = 1 - shares[:, 1]  # sums exactly one in float32
    return joint_ids, shares


def rigged_glb(model: Model, joints: list[Joint], animations=(), in_place: bool = False,
               geometry: bool = True) -> bytes:
    """The model skinned to `joints` under an "Armature" node, with one glTF animation per
    preset name in `animations`; without `geometry` only the skeleton and its clips."""
    out = Builder()
    root = out.add("nodes", {"name": "Armature", "children": []})
    first = root + 1
    for joint in joints:
        offset = joint.position - (joints[joint.parent].position if joint.parent is not None
                                   else 0)
        out.add("nodes", {"name": joint.name, "translation": offset.tolist()})
    for i, joint in enumerate(joints):
        parent = root if joint.parent is None else first + joint.parent
        out.doc["nodes"][parent].setdefault("children", []).append(first + i)
    bind = np.tile(np.eye(4, dtype=np.float32), (len(joints), 1, 1))
    bind[:, 3, :3] = -np.array([j.position for j in joints])  # column-major: row 3 = column
    skin = out.add("skins", {"name": "Armature", "skeleton": first,
                             "joints": list(range(first, first + len(joints))),
                             "inverseBindMatrices": out.accessor(bind, "MAT4")})
    scene = [root]
    if geometry:
        out.images(model)
        bound = [weights(part.positions, joints) for part in model.parts]
        mesh = out.add("meshes", {"name": "mesh", "primitives": out.primitives(model, lambda i: {
            "JOINTS_0": out.accessor(bound[i][0], "VEC4", ARRAY_BUFFER),
            "WEIGHTS_0": out.accessor(bound[i][1], "VEC4", ARRAY_BUFFER)})})
        scene.append(out.add("nodes", {"name": "mesh", "mesh": mesh, "skin": skin}))
    height = float(np.ptp(model.positions[:, 1])) or 1.0
    for preset in animations:
        _animate(out, preset, joints, first, height, in_place)
    out.doc["scene"] = out.add("scenes", {"nodes": scene})
    return out.glb()


def _animate(out: Builder, preset: str, joints: list[Joint], first: int, height: float,
             in_place: bool) -> None:
    """One glTF animation named after the preset: joint rotations on KEYS keyframes."""
    times = np.linspace(0, CLIP_SECONDS, KEYS, dtype=np.float32)
    phase = times / CLIP_SECONDS
    names = {joint.name.removeprefix("mixamorig:"): i for i, joint in enumerate(joints)}
    moves, travel = _BIPED_MOVES.get(preset.removeprefix("preset:"), ([], (0, 0, 0)))
    if PRESETS[preset] != BIPED:  # creatures: legs step in turn, the spine sways
        moves = [(name, 0, 30, 1, i / 2) for i, name in enumerate(names) if name.startswith("Leg")]
        moves += [(name, 1, 15, 1, i / 5) for i, name in enumerate(names)
                  if name.startswith("Spine")]
        travel = (0, 0, 0.5)
    samplers, channels = [], []
    source = out.accessor(times, "SCALAR", bounds=True)
    for name, axis, degrees, cycles, offset in moves:
        angle = np.radians(degrees) * np.sin(2 * np.pi * (cycles * phase + offset))
        quaternion = np.zeros((KEYS, 4), np.float32)
        quaternion[:, axis] = np.sin(angle / 2)
        quaternion[:, 3] = np.cos(angle / 2)
        channels.append({"sampler": len(samplers),
                         "target": {"node": first + names[name], "path": "rotation"}})
        samplers.append({"input": source, "output": out.accessor(quaternion, "VEC4")})
    if not in_place and any(travel):
        path = joints[0].position + np.outer(phase, travel).astype(np.float32) * height
        channels.append({"sampler": len(samplers),
                         "target": {"node": first, "path": "translation"}})
        samplers.append({"input": source, "output": out.accessor(path.astype(np.float32),
                                                                 "VEC3")})
    out.add("animations", {"name": preset, "samplers": samplers, "channels": channels})
