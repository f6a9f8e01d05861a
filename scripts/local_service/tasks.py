"""A task's record and lifecycle: queued, running, then its final status, on a clock."""

from __future__ import annotations

import datetime
import hashlib
import math
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from .api import (
    CONTENT_POLICY_CODES,
    CONVERT_DEFAULTS,
    CONVERT_FORMATS,
    DRAFT_TYPES,
    FAILED,
    MODEL_TYPES,
    MULTIVIEW_IMAGE_TYPES,
    MULTIVIEW_KEY,
    OPTION_CREDITS,
    OWN_MESH_CREDITS,
    OWN_MESH_TYPES,
    POST_CREDITS,
    POST_TYPES,
    QUEUED,
    RUNNING,
    SUCCESS,
    UNKNOWN,
    V3_MAX_PRESIGNED,
)
from .gltf import check_glb
from .images import MAX_IMAGE_BYTES, check_image
from .render import VIEWS
from .shapes import DEFAULT_FACES, MAX_FACES

# v3 names a finished task's files differently (upstream returns one signed model_url).
V3_KEYS = {"model": "model_url", "pbr_model": "model_url", "base_model": "base_model_url",
           "rendered_image": "rendered_image_url", "generated_image": "generated_image_url"}
FETCH_TIMEOUT = 5.0
FETCH_ERROR_CODE = 1004  # a task whose input URL cannot be used failed on an invalid parameter
QUEUED_SHARE = 0.2  # of the latency, before the task starts running


@dataclass
class Source:
    """An input image (or model): its bytes when known at create time, else a URL the
    service fetches."""
    data: bytes | None = None
    url: str | None = None
    param: str = "file"
    model: bool = False  # a GLB to import, not a picture


@dataclass
class Task:
    task_id: str
    key: str
    kind: str  # the v2 task type; on v3 the route names it
    input: dict
    created: float  # monotonic, drives the lifecycle
    create_time: int  # unix seconds, as reported
    created_wall: float = 0.0  # unix time of `created`, for succeeded_at
    sources: list = field(default_factory=list)  # Source or None (a skipped view)
    parent: Task | None = None  # the draft, or the multiview image task built on
    api: str = "v2"  # the API that created it, the only one that can read it
    partial: bool = False  # an edit whose result holds only the edited views
    final_status: str = SUCCESS
    error: dict | None = None
    unknown_for: float = 0.0  # seconds of status "unknown" before the lifecycle starts
    pad_to: int = 0  # bytes its GLB is padded up to (a pad_glb_mb fault), for big downloads
    images: list = field(default_factory=list)  # the sources' bytes once resolved
    ready: threading.Event = field(default_factory=threading.Event)
    ready_at: float = 0.0  # monotonic: when its inputs were in (success waits for them)
    polls: int = 0  # GETs that read it, for tests of how often a client polls
    files: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def option(self, name: str, default=None):
        """A model option; a refine inherits what its draft asked for."""
        if name in self.input:
            return self.input[name]
        if self.kind == "refine_model":
            return self.parent.option(name, default)
        return default

    @property
    def faces(self) -> int:
        """face_limit, else the default (twice it for detailed geometry); a refine without
        one doubles its draft's."""
        if "face_limit" in self.input:
            return self.input["face_limit"]
        if self.kind == "refine_model":
            return min(MAX_FACES, 2 * self.parent.faces)
        if self.input.get("geometry_quality") == "detailed":
            return 2 * DEFAULT_FACES
        return DEFAULT_FACES

    @property
    def pbr(self) -> bool:
        return self.option("pbr") is True

    @property
    def model_key(self) -> str:
        """Upstream names the output after the request: pbr_model when pbr was asked for."""
        return "pbr_model" if self.pbr else "model"

    def outputs(self) -> dict[str, str]:
        """Output key -> file name, for a successful task."""
        if self.kind in OWN_MESH_TYPES:  # the rig check answers in fields, not files
            return {} if self.kind == "animate_prerigcheck" else {"model": "model.glb"}
        if self.kind == "convert_model":
            return {"model": f"model.{CONVERT_FORMATS[self.input['format']]}"}
        if self.kind == "highpoly_to_lowpoly" and self.input.get("quad") is True:
            return {"model": "model.fbx"}  # its triangle twin, model.glb, is kept unserved
        if self.kind in POST_TYPES:
            return {"model": "model.glb"}
        if self.kind in MULTIVIEW_IMAGE_TYPES:
            shown = VIEWS
            if self.partial and self.kind == "edit_multiview_image":
                edited = {entry["view"] for entry in self.input["prompts"]}
                shown = [view for view in VIEWS if view in edited]
            return {f"{view}_view_url": f"{view}_view.png" for view in shown}
        if self.kind not in MODEL_TYPES:
            return {"generated_image": "generated_image.png"}
        if self.option("quad") is True:
            return {"model": "model.fbx", "rendered_image": "rendered_image.png"}
        return {self.model_key: f"{self.model_key}.glb", "rendered_image": "rendered_image.png"}

    def credits(self) -> int:
        if self.kind in POST_TYPES:
            extra = self.kind == "convert_model" and any(
                name in self.input and self.input[name] != default
                for name, default in CONVERT_DEFAULTS.items())
            return POST_CREDITS[self.kind] + 5 * extra
        if self.kind in OWN_MESH_TYPES:
            base = OWN_MESH_CREDITS[self.kind]
            if self.kind == "animate_retarget":
                return base * len(self.input.get("animations") or [None])
            detailed = self.option("texture_quality") in ("detailed", "extreme")
            return base + 10 * (detailed and self.kind == "texture_model")
        if self.kind not in MODEL_TYPES:
            return 10 if self.kind in MULTIVIEW_IMAGE_TYPES else 5
        textured = self.option("texture", True) or self.pbr
        detailed = self.option("texture_quality") in ("detailed", "extreme")
        return 10 + 10 * textured + 10 * detailed + self._option_credits()

    def _option_credits(self) -> int:
        """v3's generation options, at their price when on (geometry_quality: detailed)."""
        if self.api != "v3":
            return 0
        on = {name: self.input.get(name) is True for name in OPTION_CREDITS}
        on["geometry_quality"] = self.input.get("geometry_quality") == "detailed"
        return sum(OPTION_CREDITS[name] for name, value in on.items() if value)

    def seed(self) -> str:
        """What the task's shapes and colours derive from: its prompt, else its inputs;
        a model_seed makes another shape from the same inputs, as upstream."""
        if self.parent is not None:
            return self.parent.seed()
        model_seed = self.input.get("model_seed")
        salt = f" #{model_seed}" if isinstance(model_seed, int) else ""
        prompt = self.input.get("prompt")
        if self.kind not in DRAFT_TYPES[1:] and isinstance(prompt, str) and prompt.strip():
            return prompt + salt
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(image or b"-")
        return f"image {digest.hexdigest()[:16]}{salt}"

    def in_flight(self, now: float, latency: float) -> bool:
        return not self.ready.is_set() or now - self.created < self.unknown_for + latency

    def resolve(self) -> None:
        """Fetch URL inputs; a URL that cannot be used fails the task, as upstream does."""
        try:
            self.images = [source and (source.data or fetch(source)) for source in self.sources]
        except ValueError as exc:
            self.final_status = FAILED
            self.error = {"error_code": FETCH_ERROR_CODE, "error_msg": str(exc)}
        self.ready_at = time.monotonic()
        self.ready.set()

    def succeeded_at(self, latency: float) -> float | None:
        """The unix time it turned success (its clock ran out, or its inputs came in, if
        later), for tests of how soon a client sees it; None until then, or when it ends
        otherwise."""
        if self.final_status != SUCCESS or self.progress(latency)["status"] != SUCCESS:
            return None
        turned = max(self.created + self.unknown_for + latency, self.ready_at)
        return self.created_wall + (turned - self.created)

    def progress(self, latency: float) -> dict:
        """Status fields from the time since creation: queued, then running, then final."""
        elapsed = time.monotonic() - self.created
        if elapsed < self.unknown_for:
            return {"status": UNKNOWN, "progress": 0, "queuing_num": -1,
                    "running_left_time": -1}
        elapsed -= self.unknown_for
        queue_end = QUEUED_SHARE * latency
        if elapsed >= latency and self.ready.is_set():
            done = self.final_status == SUCCESS
            return {"status": self.final_status, "progress": 100 if done else 0,
                    "queuing_num": -1, "running_left_time": -1}
        if elapsed < queue_end:
            return {"status": QUEUED, "progress": 0,
                    "queuing_num": 1 if elapsed < queue_end / 2 else 0, "running_left_time": -1}
        share = (elapsed - queue_end) / max(latency - queue_end, 1e-9)
        return {"status": RUNNING, "progress": min(99, int(share * 100)), "queuing_num": -1,
                "running_left_time": max(1, math.ceil(latency - elapsed))}

    def view(self, latency: float, base_url: str, nested: bool, shape: str = "v2") -> dict:
        """The task as Tripo's GET returns it, in v2's or v3's shape; `nested` puts multiview
        URLs under generate_multiview_image (upstream does, for generate and edit alike)."""
        state = self.progress(latency)
        status, error = state["status"], self.error if state["status"] == self.final_status \
            else None
        output = {}
        if status == SUCCESS:
            files = f"{base_url}/files/{self.task_id}"
            names = self.outputs()
            if shape == "v3":
                names = {V3_KEYS.get(key, key): name for key, name in names.items()}
            output = {key: f"{files}/{name}" for key, name in names.items()}
            if self.kind in MULTIVIEW_IMAGE_TYPES and nested:
                output = {MULTIVIEW_KEY: output}
        credits = self.credits() if status == SUCCESS else 0
        view = {"task_id": self.task_id, "type": self.kind, "status": status,
                "input": self.input, "output": output, "progress": state["progress"],
                "queuing_num": state["queuing_num"],
                "running_left_time": state["running_left_time"]}
        if shape == "v2":
            view.update(create_time=self.create_time, consumed_credit=credits)
            if error:
                view.update(error)
            return view
        view.update(created_at=_iso(self.create_time), credits_consumed=credits)
        if status == "banned":
            # v3 reports a content-policy refusal as a failure with its code.
            status = view["status"] = FAILED
            if not (error and error["error_code"] in CONTENT_POLICY_CODES):
                error = {"error_code": CONTENT_POLICY_CODES[0],
                         "error_msg": "the request breaks the content policy"}
        if state["status"] not in (QUEUED, RUNNING, UNKNOWN):
            view["completed_at"] = _iso(self.create_time + math.ceil(self.unknown_for + latency))
        if error:
            view.update(error_code=error["error_code"], error_message=error["error_msg"])
        return view


def _iso(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def fetch(source: Source) -> bytes:
    """Download a task's input image (or model) as the real service does; ValueError says
    what failed."""
    request = urllib.request.Request(source.url, headers={"User-Agent": "ModelStreamLocal/1.0"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as resp:
            data = resp.read((V3_MAX_PRESIGNED if source.model else MAX_IMAGE_BYTES) + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(f"could not fetch {source.param} {source.url}: {reason}") from None
    try:
        check_glb(data, V3_MAX_PRESIGNED) if source.model else check_image(data)
    except ValueError as exc:
        raise ValueError(f"{source.param} {source.url}: {exc}") from None
    return data
