"""The prompt field's drop-down recalls the last 20 distinct prompts of the job history,
newest first (issue 13). History text is data: whatever a damaged or hostile history holds
comes back as plain, short, encodable text or not at all."""

import json

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history, joblist
from modelstream_addon.core import job as job_mod


def job(prompt, created):
    return job_mod.Job(body={"type": "text_to_model", "prompt": prompt}, created=created,
                       state=job_mod.IMPORTED)


def test_the_last_twenty_distinct_prompts_newest_first():
    jobs = [job(f"prompt {n}", 1000.0 + n) for n in range(30)]
    jobs += [job("prompt 3", 2000.0),
             job_mod.Job(body={"type": "refine_model", "draft_model_task_id": "t"},
                         created=2001.0)]
    jobs.insert(0, job("prompt 29", 500.0))  # an older copy never outranks the newest
    found = joblist.recent_prompts(jobs)
    assert found[:3] == ["prompt 3", "prompt 29", "prompt 28"], found
    assert len(found) == 20 and len(set(found)) == 20
    assert found[-1] == "prompt 11"
    assert joblist.recent_prompts(jobs, limit=2) == ["prompt 3", "prompt 29"]


def test_hostile_text_comes_back_plain_short_and_encodable():
    jobs = [job("a\x00chair\x1b[31m\nwith\tlegs", 5.0), job("bad \ud800 half", 4.0),
            job("x" * 5000, 3.0), job("   ", 2.0), job(None, 1.5), job(["a list"], 1.0),
            job({"a": "dict"}, 0.5), job(12345, 0.2)]
    found = joblist.recent_prompts(jobs)
    assert found == ["a chair [31m with legs", "bad half", "x" * 1024]
    for text in found:
        text.encode("utf-8")  # Blender's search list takes UTF-8
        assert text.isprintable()


def test_prompts_from_a_damaged_history_file(tmp_path):
    path = tmp_path / "history.json"
    records = [history.record_of(job(f"lamp {n % 3}\r\n", 10.0 + n)) for n in range(6)]
    records.append({**history.record_of(job("ok", 1.0)), "body": {"type": "text_to_model",
                                                                "prompt": 7}})
    records[0]["id"], records[-1]["id"] = "0123456789ab", "ba9876543210"
    history.write_atomic(str(path), records)
    text = path.read_text().replace('"lamp 0', '"lamp \\ud800zero', 1)
    path.write_text(text)
    json.loads(text)  # still JSON, with a lone surrogate escape in it
    eng = engine_mod.Engine(str(tmp_path / "downloads"), history_path=str(path))
    try:
        found = joblist.recent_prompts(eng.jobs.values())
    finally:
        eng.shutdown()
    assert found[:3] == ["lamp 2", "lamp 1", "lamp 0"], found
    assert all(t.isprintable() for t in found)


def test_the_prompt_field_offers_the_recent_prompts(blender, addon, service):
    bpy = blender
    for prompt in ("an oak barrel", "a copper kettle", "an oak barrel"):
        addon.api.generate(prompt=prompt, face_limit=200)
    deferred = addon.properties.SceneOptions.__annotations__["prompt"]  # the panel field
    assert "search" in deferred.keywords, "the prompt field has no drop-down"
    search = deferred.keywords["search"]  # what Blender calls to fill the drop-down
    found = search(bpy.context.scene.modelstream, bpy.context, "")
    assert found[:2] == ["an oak barrel", "a copper kettle"], found
    assert len(found) == len(set(found)) <= 20
