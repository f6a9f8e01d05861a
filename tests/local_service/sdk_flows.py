"""Drive Tripo's official Python SDK against the local service: `python sdk_flows.py VERSION URL
KEY OUT_DIR FRONT LEFT RIGHT` prints one JSON object, each flow's task and downloaded files.

Run in a child process by test_sdk.py: 1.0.0 (in the venv) speaks v3, 0.4.2 (installed apart by
scripts/venv.sh, reached through PYTHONPATH) speaks v2. Every call is the SDK's own, so a shape
the double gets wrong fails here, in a client nobody on this project wrote.
"""

from __future__ import annotations

import asyncio
import json
import sys

MODEL_OPTIONS = {"face_limit": 400}


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
        return run

    done = await asyncio.gather(*(finish(name, task_id) for name, task_id in ids.items()))
    return dict(zip(ids, done, strict=True))


def main(version: str, url: str, key: str, out: str, *pictures: str) -> None:
    import tripo3d

    if tripo3d.__version__ != version:
        sys.exit(f"expected tripo3d {version}, imported {tripo3d.__version__} "
                 f"from {tripo3d.__file__}")
    # 0.4.2 would reach for boto3 (an S3 upload) when it is importable; the service is the
    # relay, which takes the direct upload, so the SDK must take its fallback.
    sys.modules["boto3"] = None
    flows = v3_flows if version.startswith("1.") else v2_flows
    print(json.dumps(asyncio.run(flows(url, key, out, *pictures))))


if __name__ == "__main__":
    main(*sys.argv[1:])
