# A Dask worker for `python -m autograder grade <ps> --cluster ADDRESS`.
#
#   docker build -f docker/worker.Dockerfile -t cnnlab-grader .
#   docker run --rm --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#       cnnlab-grader dask worker tcp://SCHEDULER:8786 --nthreads 1
#
# Build it from the same commit as the coordinator: a worker whose cnnlab differs
# refuses to grade (the coordinator sends a fingerprint of its reference code).
# What it holds, and nothing more: Python, the course's package and autograder
# with the grading extras (nbgrader, the seccomp binding, a kernel) and Dask, and
# bubblewrap for the jail. The jail makes user namespaces: the container must be
# allowed to (the two --security-opt above, or your runtime's equivalent).
FROM python:3.12-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/cnnlab
COPY pyproject.toml README.md ./
COPY cnnlab ./cnnlab
COPY autograder ./autograder
RUN python -m pip install --no-cache-dir -e '.[lab,course,cluster]' \
    && python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnnlab)"

# One thread per worker process: a grading task keeps one core busy (BLAS pinned).
CMD ["dask", "worker", "--nthreads", "1"]
