"""Drive Tripo's official Python SDK against the local service: `python sdk_flows.py FLOW URL
KEY OUT_DIR FILE...` prints one JSON object, each flow's task and downloaded files.

Run in a child process by test_sdk.py: FLOW 1.0.0 (in the venv) speaks v3 and 0.4.2 (installed
apart by scripts/venv.sh, reached through PYTHONPATH) v2, given FRONT LEFT RIGHT pictures;
own-mesh (1.0.0) imports SMALL and LARGE GLBs, then textures, rig-checks, rigs and retargets;
post (1.0.0) segments, completes, reduces and converts a robot; stylize (0.4.2) styles one.
Every call is the SDK's own, so a shape the double gets wrong fails here, in a client nobody on
this project wrote.
"""

from __future__ import annotations

import asyncio
import json
import sys

MODEL_OPTIONS = {"face_limit": 400}
CONVERT_FORMATS = ("FBX", "OBJ", "STL", "USDZ", "3MF", "GLTF")


def _first_wave(client, front, left, right):
    """The calls both SDK versions make the same way."""
    return {
        "text_to_model": client.text_to_model("a small teapot", **MODEL_OPTIONS),
        "image_to_model": client.image_to_model(front, **MODEL_OPTIONS),
        "multiview_to_model": client.multiview_to_model([front, left, None, right],
                                                        **MODEL_OPTIONS),
        "text_to_image": client.text_to_image("a paper kite"),
        "generate_multiview_image": client.generate_multiview_image(front),
    }


async def v3_flows(url: str, key: str, out: str, front: str, left: str, right: str) -> dict:
    """SDK 1.0.0: the base URL by its constructor argument; local files are uploaded."""
    from tripo3d import TripoClient

    async with TripoClient(api_key=key, v3_base_url=url) as client:
        runs = await _finish(client, out, _first_wave(client, front, left, right))
        views = runs["generate_multiview_image"]["task_id"]
        second = {
            "edit_multiview_image": client.edit_multiview_image(
                views, [{"view": "front", "prompt": "make it gold"},
                        {"view": "right", "prompt": "add a tail"}]),
            # An image task's id and a multiview task's id are inputs too.
            "image_to_model_from_task": client.image_to_model(
                runs["text_to_image"]["task_id"], **MODEL_OPTIONS),
            "multiview_to_model_from_task": client.multiview_to_model(views, **MODEL_OPTIONS),
        }
        runs.update(await _finish(client, out, second))
        balance = await client.get_balance()
    return {"runs": runs, "balance": {"balance": balance.balance, "frozen": balance.frozen}}


async def v2_flows(url: str, key: str, out: str, front: str, left: str, right: str) -> dict:
    """SDK 0.4.2: its v2 base URL is a class attribute, so a subclass points it here."""
    from tripo3d import TripoClient

    local = type("LocalClient", (TripoClient,), {"BASE_URL": f"{url}/tripo/v2/openapi"})
    async with local(api_key=key) as client:
        runs = await _finish(client, out, _first_wave(client, front, left, right))
        edit = client.edit_multiview_image(
            runs["generate_multiview_image"]["task_id"],
            [{"view": "front", "prompt": "make it gold"}, {"view": "right", "prompt": "a tail"}])
        runs.update(await _finish(client, out, {"edit_multiview_image": edit}))
        balance = await client.get_balance()
    return {"runs": runs, "balance": {"balance": balance.balance, "frozen": balance.frozen}}


async def own_mesh_flows(url: str, key: str, out: str, small: str, large: str) -> dict:
    """SDK 1.0.0, your own mesh in: the small GLB goes up through /v3/files, the large one
    (over the SDK's 50 MB multipart limit) through a presigned PUT; each wave builds on the
    last one's task."""
    from tripo3d import Animation, RigSpec, TripoClient

    async with TripoClient(api_key=key, v3_base_url=url) as client:
        runs = await _finish(client, out, {"import_model": client.import_model(small),
                                           "import_large": client.import_model(large)})
        model = runs["import_model"]["task_id"]
        runs.update(await _finish(client, out, {"texture_model": client.texture_model(
            model, text_prompt="weathered bronze", texture_seed=5)}))
        textured = runs["texture_model"]["task_id"]
        runs.update(await _finish(client, out, {
            "rig_check": client.rig_check(textured),
            "rig": client.rig_model(textured, spec=RigSpec.MIXAMO)}))
        rig = runs["rig"]["task_id"]
        runs.update(await _finish(client, out, {
            "retarget": client.retarget_animation(
                rig, [Animation.WALK, Animation.RUN, Animation.IDLE]),
            "retarget_one": client.retarget(rig, animation=Animation.JUMP)}))
        balance = await client.get_balance()
    return {"runs": runs, "balance": {"balance": balance.balance, "frozen": balance.frozen}}


async def post_flows(url: str, key: str, out: str) -> dict:
    """SDK 1.0.0, post-processing: a robot and a model with the generation options; the
    robot segmented, reduced and converted to each format; the segmentation completed."""
    from tripo3d import TripoClient

    async with TripoClient(api_key=key, v3_base_url=url) as client:
        runs = await _finish(client, out, {
            "robot": client.text_to_model("a robot", face_limit=1200),
            "options": client.text_to_model(
                "a robot", model_version="v3.1-20260211", face_limit=1000,
                generate_parts=True, smart_low_poly=True, geometry_quality="detailed")})
        robot = runs["robot"]["task_id"]
        wave = {"mesh_segmentation": client.mesh_segmentation(robot),
                "smart_lowpoly": client.smart_lowpoly(robot, face_limit=500)}
        for kind in CONVERT_FORMATS:
            wave[f"convert_{kind}"] = client.convert_model(robot, kind)
        runs.update(await _finish(client, out, wave))
        runs.update(await _finish(client, out, {"mesh_completion": client.mesh_completion(
            runs["mesh_segmentation"]["task_id"], part_names=["arm_left"])}))
        balance = await client.get_balance()
    return {"runs": runs, "balance": {"balance": balance.balance, "frozen": balance.frozen}}


async def stylize_flows(url: str, key: str, out: str) -> dict:
    """SDK 0.4.2, stylize_model on the v2 paths (1.0.0 retired it and sends nothing)."""
    from tripo3d import PostStyle, TripoClient

    local = type("LocalClient", (TripoClient,), {"BASE_URL": f"{url}/tripo/v2/openapi"})
    async with local(api_key=key) as client:
        runs = await _finish(client, out, {"robot": client.text_to_model("a robot",
                                                                          face_limit=600)})
        robot = runs["robot"]["task_id"]
        runs.update(await _finish(client, out, {
            "voxel": client.stylize_model(robot, PostStyle.VOXEL),
            "lego": client.stylize_model(robot, PostStyle.LEGO, block_size=40),
            "voronoi": client.stylize_model(robot, PostStyle.VORONOI)}))
        balance = await client.get_balance()
    return {"runs": runs, "balance": {"balance": balance.balance, "frozen": balance.frozen}}


async def _finish(client, out: str, creates: dict) -> dict:
    """Create each task (in order: the SDK uploads local files on the way), then wait for all
    and download each with the SDK's own helpers."""
    ids = {name: await create for name, create in creates.items()}

    async def finish(name: str, task_id: str) -> dict:
        task = await client.wait_for_task(task_id, polling_interval=0.2, timeout=60)
        status = getattr(task.status, "value", task.status)
        run = {"task_id": task_id, "type": task.type, "status": status, "files": {}}
        if status == "success":
            run["files"] = await client.download_task_models(task, out)
            run["rendered"] = await client.download_rendered_image(task, out)
        run["credits"] = getattr(task, "credits_consumed", None)
        rig_type = getattr(task.output, "rig_type", None)
        run.update(riggable=getattr(task.output, "riggable", None),
                   rig_type=getattr(rig_type, "value", rig_type),
                   output_extra={name: value for name, value in getattr(
                       task.output, "raw", {}).items() if name in ("part_names", "format")})
        return run

    done = await asyncio.gather(*(finish(name, task_id) for name, task_id in ids.items()))
    return dict(zip(ids, done, strict=True))


def main(flow: str, url: str, key: str, out: str, *files: str) -> None:
    import tripo3d

    # flow -> (the SDK version it needs, the coroutine); any other flow is 0.4.2's v2 flows.
    flows = {"1.0.0": ("1.0.0", v3_flows), "own-mesh": ("1.0.0", own_mesh_flows),
             "post": ("1.0.0", post_flows), "stylize": ("0.4.2", stylize_flows)}
    version, run = flows.get(flow, (flow, v2_flows))
    if tripo3d.__version__ != version:
        sys.exit(f"expected tripo3d {version}, imported {tripo3d.__version__} "
                 f"from {tripo3d.__file__}")
    # 0.4.2 would reach for boto3 (an S3 upload) when it is importable; the service is the
    # relay, which takes the direct upload, so the SDK must take its fallback.
    sys.modules["boto3"] = None
    print(json.dumps(asyncio.run(run(url, key, out, *files))))


if __name__ == "__main__":
    main(*sys.argv[1:])
