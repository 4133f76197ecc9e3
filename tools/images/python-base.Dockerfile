# A stand-in for python:3.11-slim-bookworm on a machine that reaches no container registry:
# Debian bookworm's own Python 3.11 on the locally built minbase (ferrocanary local images).
# The project's Dockerfiles take it as --build-arg PYTHON_IMAGE=<this image>.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
# Certificate authorities this machine trusts beyond Debian's (a proxy's, say), so that pip inside
# the builds reaches the package index as pip on the machine does. The folder may be empty.
COPY ca-certificates/ /usr/local/share/ca-certificates/
# python-is-python3: `python` and `pip` by those names, as in the official image. The official
# image's Python is not Debian-managed, so the PEP 668 marker goes: `pip install` into the system
# interpreter is what the Dockerfiles do.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3 python3-venv python3-pip python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -sf pip3 /usr/bin/pip
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
CMD ["python3"]
