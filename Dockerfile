# Diffusion Lens in a container: one app replica, the bundled checkpoints inside.
#
#   docker build -t diffusion-lens .
#   docker run -p 8501:8501 -v hf-cache:/cache/huggingface diffusion-lens
#
# For a GPU image, take torch from PyPI (its Linux x86_64 wheels bundle CUDA) instead of the
# CPU-only index:  docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t diffusion-lens:gpu .
# Several replicas need the same server.cookieSecret (STREAMLIT_SERVER_COOKIE_SECRET) and a
# proxy with session affinity: see deploy/ and README "More than one server process".
#
# The base image is pinned by digest, so a rebuild gets the same system and Python, not whatever the tag
# points at that day. This digest was not checked against Docker Hub from the machine that wrote it (it had no
# access); it is the one that several public projects pin for this tag. Check it, and later move it, with
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm     (the "Digest:" line)
# and put the new digest here (docs/security.md, "Updating the pins").
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# The CPU build of the torch version requirements.txt pins (PyPI's Linux wheel pulls in the CUDA libraries).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Hub models picked in the app are downloaded here: mount a volume to keep them.
    HF_HOME=/cache/huggingface \
    # Read by model/serving/runtime.py. Inside a container os.sched_getaffinity sees the host's cores,
    # not the CPU limit, so set THREADS explicitly: CPU limit / CONCURRENCY, at least 1.
    DIFFUSION_LENS_CONCURRENCY=2 \
    DIFFUSION_LENS_THREADS=1 \
    # Empty: the bundled checkpoints/photo-unet; or a model folder / Hub id.
    DIFFUSION_LENS_MODEL="" \
    # Caches the app writes (the precision choices, anything under XDG_CACHE_HOME) go to /tmp, the one
    # writable place when the root filesystem is read-only (deploy/deployment.yaml mounts an emptyDir there).
    DIFFUSION_LENS_PRECISION_CACHE=/tmp/diffusion-lens/precision \
    XDG_CACHE_HOME=/tmp/cache \
    # Streamlit's own settings (.streamlit/config.toml has the rest). Several replicas also
    # need one STREAMLIT_SERVER_COOKIE_SECRET, set at run time (deploy/secret.yaml), never here.
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app \
    && mkdir -p /cache/huggingface \
    && chown app:app /cache/huggingface

WORKDIR /app

# Each package comes from one index, never two: torch (and what it needs) from TORCH_INDEX_URL alone, then the rest
# from PyPI alone, where torch is already there. `--extra-index-url` would let a name published on either index win
# (the dependency-confusion pattern). Not `--require-hashes`: that needs every package, transitive ones too, pinned
# with its hash for this platform, and requirements.txt pins the direct ones only (it also installs the project on
# a teacher's laptop); the base image's digest and the version pins are what fix the build (docs/security.md).
COPY requirements.txt .
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "$(grep -E '^torch==' requirements.txt)" \
    && pip install --no-cache-dir --index-url https://pypi.org/simple -r requirements.txt

# The app, the model code, the sample photos, the bundled checkpoints (training state left out
# by .dockerignore) and the classroom server settings (.streamlit/config.toml, read from WORKDIR).
COPY .streamlit/ .streamlit/
COPY assets/ assets/
COPY checkpoints/ checkpoints/
COPY model/ model/
COPY app/ app/

# The project itself, editable (pyproject.toml: the app and model packages, no dependencies of its own), so
# that `import model` reads /app/model and finds the bundled checkpoints beside it; built with the setuptools
# that requirements.txt installed.
COPY pyproject.toml .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .

# numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd
USER 10001:10001
VOLUME ["/cache/huggingface"]
EXPOSE 8501

# a loaded server answers /_stcore/health slowly (docs/security.md, "Probe timeouts"): 10 s, not 5
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('STREAMLIT_SERVER_PORT', '8501'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/_stcore/health', timeout=9).status != 200)"]

# app/launch.py refuses the placeholder cookie secret of deploy/secret.yaml, then runs
# `streamlit run app/streamlit_app.py` in its place (same process, so SIGTERM reaches the server)
CMD ["python", "-m", "app.launch"]
