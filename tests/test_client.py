"""The HTTP client against the real local service over loopback (no bpy)."""

import socket

import pytest

from modelstream_addon.core import errors
from modelstream_addon.core.client import ModelStreamClient, parse_retry_after
from tests.conftest import KEY


def body(**extra):
    return {"type": "text_to_model", "prompt": "a small teapot", "face_limit": 800, **extra}


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_create_then_get_returns_the_task(service, tmp_path):
    client = ModelStreamClient(KEY, service.url)
    task_id = client.create_task(body())
    data = client.get_task(task_id)
    assert data["task_id"] == task_id
    assert data["status"] in ("queued", "running", "success")
    assert service.stats()["tasks_created"] == 1


def test_key_never_shown(service):
    client = ModelStreamClient(KEY, service.url)
    assert KEY not in repr(client)
    bad = ModelStreamClient(KEY + "x", service.url)
    with pytest.raises(errors.AuthenticationError) as info:
        bad.create_task(body())
    text = str(info.value)
    assert KEY not in text and "MODELSTREAM_API_KEY" in text
    assert info.value.status == 401


def test_missing_key_and_bad_url_are_config_errors():
    with pytest.raises(errors.ConfigError, match="API key"):
        ModelStreamClient("", "http://127.0.0.1:1")
    with pytest.raises(errors.ConfigError, match="Base URL"):
        ModelStreamClient(KEY, "ftp://example")


def test_invalid_request_names_param(service):
    client = ModelStreamClient(KEY, service.url)
    with pytest.raises(errors.InvalidRequestError) as info:
        client.create_task(body(face_limit=0))
    assert info.value.param == "face_limit"
    assert "face_limit" in str(info.value)
    assert service.stats()["tasks_created"] == 0


def test_unknown_task_is_not_found_in_tripo_shape(service):
    client = ModelStreamClient(KEY, service.url)
    with pytest.raises(errors.NotFoundError) as info:
        client.get_task("no-such-task")
    assert info.value.code == 2001
    assert info.value.trace_id


def test_unreachable_service_is_connection_failed():
    client = ModelStreamClient(KEY, closed_port_url(), max_retries=1, backoff=0.01)
    with pytest.raises(errors.ConnectionFailedError) as info:
        client.create_task(body())
    assert "Could not connect" in str(info.value)
    assert KEY not in str(info.value)


def test_slow_create_is_uncertain_and_never_resent(service):
    service.faults(delay=1.5)
    client = ModelStreamClient(KEY, service.url, read_timeout=0.3, backoff=0.01)
    with pytest.raises(errors.RequestUncertainError, match="may have been created"):
        client.create_task(body())
    service.faults(reset=True)
    assert service.stats()["requests"]["create"] == 1


def test_download_streams_to_file(service, tmp_path):
    client = ModelStreamClient(KEY, service.url)
    service.faults(reset=True)
    task_id = client.create_task(body())
    import time

    deadline = time.monotonic() + 20
    while (data := client.get_task(task_id))["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    url = data["output"]["model"]
    dest = str(tmp_path / "m.glb")
    size = client.download(url, dest)
    with open(dest, "rb") as f:
        assert f.read(4) == b"glTF"
    assert size == (tmp_path / "m.glb").stat().st_size
    assert not (tmp_path / "m.glb.part").exists()


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10.0
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("fault, error, hint", [
    ({"status": 402}, errors.PaymentRequiredError, "quota or credit"),
    ({"status": 403}, errors.ForbiddenError, "IP is not allowed"),
    ({"status": 403, "code": 2010}, errors.PaymentRequiredError, "credit"),
    ({"status": 400, "code": 2008}, errors.ContentPolicyError, "content policy"),
    ({"status": 400, "code": 2009}, errors.PromptCharactersError, "emoji"),
    ({"status": 400, "code": 1004}, errors.InvalidRequestError, "ModelStream"),
    ({"status": 401, "code": 1002}, errors.AuthenticationError, "API key"),
    ({"status": 500}, errors.ServiceError, "try again later"),
    ({"status": 503}, errors.ServiceError, "try again later"),
    ({"status": "reset"}, errors.RequestUncertainError, "may have been created"),
])
def test_create_failures_are_typed_and_never_resent(service, fault, error, hint):
    service.faults(fail_create={"count": 5, **fault})
    client = ModelStreamClient(KEY, service.url, backoff=0.01)
    with pytest.raises(error) as info:
        client.create_task(body())
    assert hint in str(info.value)
    assert KEY not in str(info.value)
    assert service.stats()["requests"]["create"] == 1


def test_create_is_retried_after_429_with_retry_after(service):
    service.faults(fail_create={"status": 429, "count": 1, "retry_after": 0.2})
    client = ModelStreamClient(KEY, service.url, backoff=0.01)
    client.create_task(body())
    stats = service.stats()
    assert stats["requests"]["create"] == 2 and stats["tasks_created"] == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_get_retries_transient_failures(service, status):
    client = ModelStreamClient(KEY, service.url, backoff=0.01)
    task_id = client.create_task(body())
    service.faults(fail_get={"status": status, "count": 2, "retry_after": 0})
    assert client.get_task(task_id)["task_id"] == task_id
    assert service.stats()["requests"]["get"] == 3


def test_get_gives_up_after_bounded_retries(service):
    client = ModelStreamClient(KEY, service.url, backoff=0.01, max_retries=2)
    task_id = client.create_task(body())
    service.faults(fail_get={"status": 500, "count": 10})
    with pytest.raises(errors.ServiceError) as info:
        client.get_task(task_id)
    assert task_id in str(info.value)
    assert service.stats()["requests"]["get"] == 3


def finished(client, task_id):
    import time

    deadline = time.monotonic() + 20
    while (data := client.get_task(task_id))["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return data


def test_truncated_download_is_retried(service, tmp_path):
    client = ModelStreamClient(KEY, service.url, backoff=0.01)
    service.faults(truncate_download=1)
    data = finished(client, client.create_task(body()))
    dest = tmp_path / "m.glb"
    assert client.download(data["output"]["model"], str(dest)) == dest.stat().st_size
    assert service.stats()["faults"]["truncate_download"] == 1


def test_truncated_download_gives_up_and_leaves_no_file(service, tmp_path):
    client = ModelStreamClient(KEY, service.url, backoff=0.01, max_retries=1)
    service.faults(truncate_download=5)
    data = finished(client, client.create_task(body()))
    with pytest.raises(errors.DownloadError, match="cut short"):
        client.download(data["output"]["model"], str(tmp_path / "m.glb"))
    assert list(tmp_path.iterdir()) == []


def test_network_settings_are_checked_before_sending(tmp_path):
    with pytest.raises(errors.ConfigError, match="Proxy URL"):
        ModelStreamClient(KEY, "http://127.0.0.1:1", proxy="custom", proxy_url="proxy:3128")
    with pytest.raises(errors.ConfigError, match="CA bundle"):
        ModelStreamClient(KEY, "http://127.0.0.1:1", ca_bundle=str(tmp_path / "none.pem"))
    (tmp_path / "empty.pem").write_text("nothing here")
    with pytest.raises(errors.ConfigError, match="no PEM"):
        ModelStreamClient(KEY, "http://127.0.0.1:1", ca_bundle=str(tmp_path / "empty.pem"))


def test_no_proxy_setting_ignores_proxy_environment(service, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    direct = ModelStreamClient(KEY, service.url, proxy="none")
    assert "accepted" in direct.check()
    through = ModelStreamClient(KEY, service.url, proxy="custom",
                                proxy_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(errors.ConnectionFailedError):
        through.check()


def test_check_reports_a_bad_key_without_creating_a_task(service):
    with pytest.raises(errors.AuthenticationError):
        ModelStreamClient("sk-nope", service.url).check()
    assert service.stats()["tasks_created"] == 0


def test_a_task_the_service_has_no_route_for_is_refused_before_any_request(service):
    from modelstream_addon.core import services, tasks

    client = ModelStreamClient(KEY, service.url, service=services.named("tripo-v3"))
    with pytest.raises(tasks.ValidationError, match="no refine_model"):
        client.create_task({"type": "refine_model", "draft_model_task_id": "draft-1"})
    assert service.stats()["requests"].get("create", 0) == 0
    assert "tripo-v3" in repr(client) and KEY not in repr(client)
