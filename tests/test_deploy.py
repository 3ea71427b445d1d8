"""Deployment: the Dockerfile lints, the Kubernetes manifests validate and agree with each other,
and `make cluster` runs replicas behind a sticky proxy that keeps every request of a session on
one replica, then `make cluster-down` leaves no process behind.

The cluster test needs Debian's haproxy (`make test` installs it, as it installs Chromium);
it skips only when haproxy is missing and cannot be installed, and fails instead under CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import ROOT, png_bytes

BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(DEPLOY.glob("*.yaml")) + sorted(DEPLOY.glob("gpu/*.yaml"))
HEALTH = "/_stcore/health"


def tool(name: str) -> str:
    """A command-line tool from requirements-dev.txt, next to this interpreter or on PATH."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: pip install -r requirements-dev.txt")
    return str(path)


# --------------------------------------------------------------------------- Dockerfile
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#"):
            continue
        buf += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            if buf.strip():
                word, _, rest = buf.strip().partition(" ")
                out.append((word.upper(), rest))
            buf = ""
    return out


def test_dockerfile_lints_clean():
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The lint above is not a no-op: unpinned base image and apt without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged FROM


def test_dockerfile_runs_what_the_app_needs():
    from model.nets import runtime

    ins = dockerfile()
    args = {k: [a for i, a in ins if i == k] for k in {i for i, _ in ins}}
    assert args["FROM"] == ["python:3.11-slim-bookworm"]
    # torch pinned exactly as requirements.txt pins it: the image installs that file
    assert any("-r requirements.txt" in a for a in args["RUN"])
    assert any(line.startswith("torch==") for line in (ROOT / "requirements.txt").read_text().splitlines())
    # non-root, numerically (Kubernetes' runAsNonRoot checks a number)
    user = args["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert HEALTH in args["HEALTHCHECK"][0]
    env = " ".join(args["ENV"])
    for name in (runtime.THREADS_ENV, runtime.CONCURRENCY_ENV, "HF_HOME=/cache/huggingface"):
        assert name in env
    assert "/cache/huggingface" in args["VOLUME"][0]
    copied = " ".join(args["COPY"])
    for folder in ("app/", "model/", "assets/", "checkpoints/", ".streamlit/"):
        assert folder in copied, f"the image lacks {folder}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "checkpoints/*/train_state/" in ignored and ".venv" in ignored
    assert not {"app", "app/", "model", "model/", "checkpoints", "checkpoints/"} & set(ignored)
    assert args["EXPOSE"] == ["8501"]


# --------------------------------------------------------------------------- Kubernetes
def test_manifests_validate_against_the_kubernetes_schema():
    assert len(MANIFESTS) >= 6
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, MANIFESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(MANIFESTS)


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n")
    result = subprocess.run([tool("kubernetes-validate"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


def load_manifests() -> dict[str, dict]:
    docs = {}
    for path in MANIFESTS:
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        docs[str(path.relative_to(DEPLOY))] = doc
    return docs


@pytest.mark.parametrize("name", ["deployment.yaml", "gpu/deployment.yaml"])
def test_deployments_probe_health_and_use_the_shared_secret(name):
    from model.nets import runtime

    docs = load_manifests()
    dep = docs[name]
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == HEALTH
    assert c["ports"][0]["containerPort"] == 8501
    res = c["resources"]
    assert {"cpu", "memory"} <= res["requests"].keys() and {"cpu", "memory"} <= res["limits"].keys()
    env = {e["name"]: e for e in c["env"]}
    assert {runtime.THREADS_ENV, runtime.CONCURRENCY_ENV, "DIFFUSION_LENS_MODEL", "HF_HOME"} <= env.keys()
    ref = env["STREAMLIT_SERVER_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"]
    secret = docs["secret.yaml"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert env["HF_HOME"]["value"] in mounts
    # same name and labels as the CPU Deployment: the Service, Ingress and HPA fit both
    assert dep["metadata"]["name"] == docs["deployment.yaml"]["metadata"]["name"]
    if name.startswith("gpu/"):
        assert res["limits"]["nvidia.com/gpu"] == 1
        assert env["DIFFUSION_LENS_DEVICE"]["value"] == "cuda"


def test_service_ingress_and_hpa_point_at_the_deployment():
    docs = load_manifests()
    dep, svc, ing, hpa = (docs[f] for f in ("deployment.yaml", "service.yaml", "ingress.yaml", "hpa.yaml"))
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == svc["metadata"]["name"]
    assert backend["port"]["name"] == svc["spec"]["ports"][0]["name"]
    notes = ing["metadata"]["annotations"]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # idle WebSockets
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


# --------------------------------------------------------------------------- make cluster
def haproxy_or_skip() -> None:
    if shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists():
        return
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install_haproxy.sh")], capture_output=True, text=True)
    if result.returncode == 0:
        return
    reason = f"haproxy is missing and could not be installed: {result.stderr.strip()[-300:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def port_block(n: int) -> int:
    from failover import free_port_block  # bench/failover.py: bench/ is on pytest's pythonpath (pyproject.toml)

    return free_port_block(n)


def haproxy_log(folder: Path) -> list[tuple[str, str, str, str, str]]:
    """(replica, status, method, path, replica named by the request's cookie or '-') per request."""
    rows = []
    for line in (folder / "haproxy.log").read_text().splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[5].startswith("cookie="):
            cookie = parts[5].split("=", 2)[2] if parts[5].count("=") == 2 else "-"
            rows.append((parts[1], parts[2], parts[3], parts[4], cookie))
    return rows


def _run_async(make_coro):
    """asyncio.run in a thread of its own: another test (Playwright's sync API) may leave an event loop
    running in the main thread, where asyncio.run refuses to start."""
    import threading

    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test's thread
            box["error"] = exc

    th = threading.Thread(target=target, name="two-tabs")
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def upload_and_fetch(url: str, name: str, opened: asyncio.Event | None = None) -> tuple[object, object]:
    """One student's tab through the proxy: open, upload a photo, see its pictures."""
    from failover import ProxiedSession

    async with ProxiedSession(url, timeout=120) as s:
        await s.open()
        if opened is not None:
            opened.set()
        s.set_radio("image_source", "Upload")
        await s.rerun()
        await s.upload("uploader", name, png_bytes((80, 80), seed=len(name)), mime="image/png")
        run = await s.rerun()  # fetches every picture of the run from /media, as a browser does
    return s, run


@pytest.mark.slow
def test_make_cluster_keeps_each_session_on_one_replica(tmp_path, tiny_model_dir):
    haproxy_or_skip()
    folder = tmp_path / "cluster"
    port = port_block(3)
    env = {**os.environ, "REPLICAS": "2", "CLUSTER_PORT": str(port), "CLUSTER_DIR": str(folder),
           "PYTHON": sys.executable, "DIFFUSION_LENS_MODEL": str(tiny_model_dir), "CLUSTER_TIMEOUT": "90"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    up = subprocess.run(["make", "-s", "cluster"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = [int(p) for p in (folder / "replicas.pid").read_text().split()]
        pids.append(int((folder / "haproxy.pid").read_text()))
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)

        # health passes through the proxy; new clients (no cookie) are spread over both replicas
        served = set()
        for _ in range(4):
            with urllib.request.urlopen(url + HEALTH, timeout=10) as r:
                assert r.status == 200 and r.read() == b"ok"
                served.add(r.headers["X-Diffusion-Lens-Replica"])
        assert served == {"r1", "r2"}

        # two tabs; the second opens while the first's WebSocket is open, so it goes to the
        # other replica (fewest connections)
        async def two_tabs():
            opened = asyncio.Event()
            first = asyncio.create_task(upload_and_fetch(url, "a.png", opened))
            await asyncio.wait_for(opened.wait(), 120)
            return await asyncio.gather(first, upload_and_fetch(url, "bb.png"))

        (s1, run1), (s2, run2) = _run_async(two_tabs)
        assert {s1.replica, s2.replica} == {"r1", "r2"}
        for run, name in ((run1, "a.png"), (run2, "bb.png")):
            assert f"x₀: {name}, 64×64" in run.images, run.alerts
        log = haproxy_log(folder)
        # every request that carried a replica's cookie was served by that replica ...
        assert all(replica == cookie for replica, _st, _m, _p, cookie in log if cookie != "-"), log
        # ... and each tab's websocket, upload and pictures all carried its cookie
        for s in (s1, s2):
            mine = [(method, path, status) for replica, status, method, path, cookie in log if cookie == s.replica]
            assert any(m == "GET" and p == "/_stcore/stream" and st == "101" for m, p, st in mine), mine
            assert any(m == "PUT" and p.startswith("/_stcore/upload_file/") and st == "204" for m, p, st in mine)
            assert any(m == "GET" and p.startswith("/media/") and st == "200" for m, p, st in mine), mine

        # and the affinity is what makes it work: a picture asked for with the other replica's
        # cookie is not there ("Bad filename" in a browser)
        media = next(u for u in run1.images.values() if "/media/" in u)
        other = "r2" if s1.replica == "r1" else "r1"
        req = urllib.request.Request(media, headers={"Cookie": f"DLREPLICA={other}"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code in (400, 404)
    finally:
        down = subprocess.run(["make", "-s", "cluster-down"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if psutil.pid_exists(p)]
    # no stray process holds a cluster port or the cluster's folder
    stray = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmd or any(f"--server.port {p}" in cmd for p in range(port, port + 3)):
            stray.append((proc.info["pid"], cmd))
    assert not stray
    assert not (folder / "replicas.pid").exists()
