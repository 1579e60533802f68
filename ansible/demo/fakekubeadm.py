"""DEMO ONLY: the simulated `kubeadm` (init, join, token, upload-certs, reset); see fakek8s.py."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys

import fakehost
import fakek8s


def _preflight(*, fail: list[str]) -> int:
    for package in ("kubeadm", "kubelet", "containerd"):
        if not fakehost.installed(package):
            fail.append(f"[ERROR FileExisting-{package}]: {package} not found in system path")
    if not fakehost.unit_active("containerd"):
        fail.append("[ERROR CRI]: container runtime is not running")
    if fakek8s.etc_path("kubelet.conf").exists():
        fail.append("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: already exists")
    if fail:
        print(
            "error execution phase preflight: [preflight] Some fatal errors occurred:",
            file=sys.stderr,
        )
        for line in fail:
            print(f"\t{line}", file=sys.stderr)
        return 1
    return 0


def _default_node_name() -> str:
    return os.environ.get("FAKEHOST_FQDN", "localhost").lower()


def _hash(state: fakek8s.State) -> str:
    return "sha256:" + hashlib.sha256(state["cluster_id"].encode()).hexdigest()


def _join_command(state: fakek8s.State) -> str:
    token = f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
    state["tokens"].append(token)
    return (
        f"kubeadm join {state['endpoint']} --token {token} "
        f"--discovery-token-ca-cert-hash {_hash(state)}"
    )


KUBEADM_VALUES = {
    "--node-name", "--token", "--discovery-token-ca-cert-hash", "--certificate-key",
    "--control-plane-endpoint", "--pod-network-cidr", "--kubeconfig",
    "--apiserver-advertise-address", "--ignore-preflight-errors", "--cri-socket",
}  # fmt: skip


def kubeadm(args: list[str]) -> int:
    words, opts = fakek8s.parse_args(args, KUBEADM_VALUES)
    if words[:1] == ["init"] and words[1:3] == ["phase", "upload-certs"]:
        with fakek8s.cluster() as state:
            state["certificate_key"] = secrets.token_hex(32)
            print(f"[upload-certs] Using certificate key:\n{state['certificate_key']}")
        return 0
    if words[:1] == ["init"]:
        return _init(opts)
    if words[:1] == ["join"] and len(words) == 2:
        return _join(words[1], opts)
    if words[:2] == ["token", "create"] and "--print-join-command" in opts:
        with fakek8s.cluster() as state:
            if not state["cluster_id"]:
                print("failed to load admin kubeconfig: no cluster", file=sys.stderr)
                return 1
            print(_join_command(state))
        return 0
    if words[:1] == ["reset"]:
        return _reset()
    if words[:1] == ["version"]:
        print(f'kubeadm version: &version.Info{{GitVersion:"{fakek8s.KUBE_VERSION}"}}')
        return 0
    print(f"fakek8s: unsupported kubeadm command: {' '.join(args)}", file=sys.stderr)
    return 64


def _init(opts: dict[str, str]) -> int:
    name = opts.get("--node-name") or _default_node_name()
    if fakek8s.etc_path("admin.conf").exists():
        print(
            "[ERROR FileAvailable--etc-kubernetes-admin.conf]: already exists",
            file=sys.stderr,
        )
        return 1
    if rc := _preflight(fail=[]):
        return rc
    with fakek8s.cluster() as state:
        # A new cluster each time, as with the real `kubeadm init`: old Nodes and tokens are gone.
        state.update(
            cluster_id=secrets.token_hex(16),
            endpoint=opts.get("--control-plane-endpoint") or "127.0.0.1:6443",
            nodes={},
            tokens=[],
            certificate_key=None,
        )
        fakek8s.write_kubeconfig(fakek8s.etc_path("admin.conf"), state, "kubernetes-admin")
        fakek8s.write_kubeconfig(fakek8s.etc_path("kubelet.conf"), state, f"system:node:{name}")
        fakek8s.register_node(state, name, control_plane=True)
        print("Your Kubernetes control-plane has initialized successfully! (simulated)")
        print(_join_command(state))
    return 0


def _join(endpoint: str, opts: dict[str, str]) -> int:
    name = opts.get("--node-name") or _default_node_name()
    if rc := _preflight(fail=[]):
        return rc
    control_plane = "--control-plane" in opts
    with fakek8s.cluster() as state:
        if not state["cluster_id"] or endpoint != state["endpoint"]:
            print(
                f"error execution phase preflight: couldn't reach {endpoint}",
                file=sys.stderr,
            )
            return 1
        if opts.get("--token") not in state["tokens"]:
            print("error execution phase preflight: token id not found", file=sys.stderr)
            return 1
        if opts.get("--discovery-token-ca-cert-hash") != _hash(state):
            print(
                "error execution phase preflight: CA hash does not match",
                file=sys.stderr,
            )
            return 1
        if control_plane and opts.get("--certificate-key") != state.get("certificate_key"):
            print("error downloading certs: the certificate key is wrong", file=sys.stderr)
            return 1
        if name in state["nodes"]:
            print(
                f"error execution phase kubelet-start: a Node with name {name!r} and status "
                '"Ready" already exists in the cluster. You must delete the existing Node or '
                "change the name of this new joining Node",
                file=sys.stderr,
            )
            return 1
        for check in fakek8s.JOIN_CHECKS:
            if error := check(state, name):
                print(error, file=sys.stderr)
                return 1
        if control_plane:
            fakek8s.write_kubeconfig(fakek8s.etc_path("admin.conf"), state, "kubernetes-admin")
        fakek8s.write_kubeconfig(fakek8s.etc_path("kubelet.conf"), state, f"system:node:{name}")
        fakek8s.register_node(state, name, control_plane=control_plane)
    print("This node has joined the cluster (simulated)")
    return 0


def _reset() -> int:
    root = fakehost.node_root()
    for sub in ("etc/kubernetes", "var/lib/kubelet", "var/lib/etcd", "etc/cni/net.d"):
        shutil.rmtree(root / sub, ignore_errors=True)
    print("[reset] Deleted contents of the etc/kubernetes and var/lib/kubelet dirs (simulated)")
    return 0


COMMANDS = {"kubeadm": kubeadm}
