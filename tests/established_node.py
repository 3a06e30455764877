"""A node whose connections were opened before its agent started, for
test_sidecar_established_testbed.py. Run as root inside a new PID namespace with its own
/proc (`unshare --pid --fork --mount-proc`), which stands for a node's hostPID view: the
agent then sees the processes of this node's pods and nothing else of the machine.

The testbed's small scenario gives the pods, addresses, Services and inventory. Before
the agent starts: web/api holds a pool of two connections to data/db's pod (5432), and
web/frontend one long stream to the api Service's ClusterIP (DNAT to the api pod, 8000).
During the window frontend opens one new connection to api (seen by the capture).
Usage: python -m tests.established_node OUT_DIR WINDOW_SECONDS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.testbed.cluster import build_cluster
from tests.testbed.dnat import choose_iptables, load_nat_table, render_nat_table
from tests.testbed.inventory_writer import build_inventory
from tests.testbed.netns import Sandbox
from tests.testbed.runner import Timeline
from tests.testbed.scenario_load import load_scenario

REPO = Path(__file__).resolve().parent.parent
API_SERVICE = ("10.96.20.11", 80)

# Accept on a port and keep every connection, echoing what comes.
SERVER = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen()
print("ready", flush=True)
def serve(c):
    while (data := c.recv(100)):
        c.sendall(data)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""
# Open N connections and keep them, sending a little every 0.2 s (data, not set-ups).
CLIENT = """
import socket, sys, time
conns = []
for _ in range(int(sys.argv[3])):
    for attempt in range(100):
        try:
            conns.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2))
            break
        except OSError:
            time.sleep(0.1)
print("connected", *(c.getsockname()[1] for c in conns), flush=True)
while True:
    for c in conns:
        c.sendall(b"ping"); c.recv(100)
    time.sleep(0.2)
"""


def main(out_dir: Path, window: float) -> None:
    scenario = load_scenario("small")
    cluster = build_cluster(scenario)
    pods = {pod.workload.key: pod for pod in cluster.pods}
    api, db, frontend = pods["web/api"], pods["data/db"], pods["web/frontend"]
    times = Timeline(setup=time.time())
    sandbox = Sandbox(f"npd-est-{int(time.time()) % 100000}-")
    try:
        node = sandbox.make_node(scenario.node.ip)
        load_nat_table(node, choose_iptables(node), render_nat_table(cluster, None))
        namespaces = {}
        for index, pod in enumerate((api, db, frontend)):
            namespaces[pod.name], _ = sandbox.attach(f"p{index}", [pod.ip], seed=pod.name)
            times.created[pod.name] = time.time()
        for pod, port in ((db, 5432), (api, 8000)):
            server = sandbox.start(namespaces[pod.name], [sys.executable, "-c", SERVER, str(port)])
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        ports = {}
        for name, pod, target, count in (
            ("pool", api, (str(db.ip), "5432"), 2),
            ("stream", frontend, (API_SERVICE[0], str(API_SERVICE[1])), 1),
        ):
            client = sandbox.start(
                namespaces[pod.name], [sys.executable, "-c", CLIENT, *target, str(count)]
            )
            assert client.stdout is not None
            words = client.stdout.readline().split()
            assert words and words[0] == "connected", words
            ports[name] = [int(p) for p in words[1:]]
        time.sleep(0.5)  # the set-ups are over before the agent starts
        times.start = time.time()
        state = out_dir / "state"
        agent = sandbox.start(node, [
            sys.executable, "-m", "discover.cli", "agent", "--interface", "any",
            "--state-dir", str(state), "--listen", "127.0.0.1:0", "--duration", f"{window}s",
            "--exit-after-window", "--established-interval", "1", "--node-name", "node-1",
        ], cwd=str(REPO), stdout=None, stderr=None)  # fmt: skip
        time.sleep(window / 2)
        late = sandbox.start(
            namespaces[frontend.name], [sys.executable, "-c", CLIENT, *map(str, API_SERVICE), "1"]
        )
        assert late.stdout is not None
        ports["late"] = [int(p) for p in late.stdout.readline().split()[1:]]
        code = agent.wait(window + 30)
        times.end = times.snapshot = time.time()
        inventory = build_inventory(cluster, times)
        (out_dir / "inventory.json").write_text(json.dumps(inventory, indent=1), "utf-8")
        facts = {
            "agent_exit": code,
            "ports": ports,
            "ips": {"api": str(api.ip), "db": str(db.ip), "frontend": str(frontend.ip)},
        }
        (out_dir / "node.json").write_text(json.dumps(facts), "utf-8")
    finally:
        for problem in sandbox.close():
            print(f"cleanup: {problem}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
