# netpol-discover: the capture agent image (also runs every other command).
#   docker build -t netpol-discover .
#   docker run --rm --net=host --cap-drop=ALL --cap-add=NET_RAW netpol-discover agent --duration 1h
# Same install as the README: `pip install .` of this repository, nothing else.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY discover ./discover
COPY sidecar ./sidecar
COPY reports ./reports
# Wheels for the package and its dependencies, so the final stage needs no compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# libpcap0.8: scapy compiles the kernel BPF filter with libpcap through ctypes (scapy
# >= 2.5 has no tcpdump fallback); no tcpdump needed. libcap2-bin only for setcap, then gone.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/netpol_discover-*.whl \
    && rm -rf /wheels
# Non-root capture: the interpreter gets CAP_NET_RAW as a file capability (the kernel
# grants it at exec when the container's bounding set holds NET_RAW, i.e. `--cap-add
# NET_RAW` / `capabilities.add: [NET_RAW]`, and no_new_privs is off). setuid/setgid bits
# are stripped so that nothing else in the image can raise privileges.
RUN setcap cap_net_raw+ep "$(readlink -f /usr/local/bin/python3)" \
    && apt-get purge -y --auto-remove libcap2-bin \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} + \
    && useradd --system --uid 65532 --user-group --no-create-home \
       --home-dir /var/lib/netpol-discover --shell /usr/sbin/nologin netpol \
    && mkdir -p /var/lib/netpol-discover \
    && chown 65532:65532 /var/lib/netpol-discover
# A read-only root filesystem is expected: no bytecode writes, unbuffered logs.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
VOLUME ["/var/lib/netpol-discover"]
WORKDIR /var/lib/netpol-discover
USER 65532:65532
EXPOSE 9808
ENTRYPOINT ["netpol-discover"]
CMD ["agent"]
