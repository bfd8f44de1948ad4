"""Fetching catalogued recordings from wherever their files are: the single FreeSWITCH's SFTP
server, or the node whose disk holds each one (`Recording.node`, issue 16).

- A recording without a node is on the recordings server of the settings (`sftp_host`,
  `sftp_port`, `sftp_user`, folder `sftp_remote_dir`), as before there were nodes.
- A recording on a node is fetched from that node's SFTP account (`fsctl node add ... --sftp
  USER@HOST[:PORT]`, the `sftp_key` and `sftp_known_hosts` settings), folder its
  `--recordings-dir` (default: the `recordings_dir` setting, the same path on every node).

Every file goes through fsctl.services.sftp.fetch_all: `.part`, resumed, size and SHA-256 checked,
then renamed. A source that cannot be reached fails its own files only ("unreachable"); the
others are fetched all the same (`FetchReport.exit_code` 3). A node without an SFTP account, or
no longer defined, fails its files with that reason (exit 1).
"""

from __future__ import annotations

import dataclasses

from ..errors import OperationError, UnreachableError
from ..model import Node
from . import nodes as nodes_svc, recordings


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the files of one node (None: the single FreeSWITCH) are fetched from, or why they cannot be."""

    node: str | None
    endpoint: object | None  # fsctl.services.sftp.Endpoint
    remote_dir: str
    problem: str = ""

    @property
    def label(self) -> str:
        """How the output names it: the node, or the recordings server of the settings."""
        return self.node or f"the recordings server {self.endpoint}"


def source_of(settings, node_name, known=None) -> Source:
    """The Source of the recordings on `node_name` (None: the single FreeSWITCH's)."""
    from .sftp import Endpoint

    if node_name is None:
        return Source(None, Endpoint.from_settings(settings), settings.sftp_remote_dir)
    node = (known or {}).get(node_name) if known is not None else Node.get_or_none(Node.name == node_name)
    if node is None:
        return Source(
            node_name, None, settings.recordings_dir, f"node {node_name} no longer exists (the file stayed on its disk)"
        )
    folder = nodes_svc.node_recordings_dir(settings, node)
    endpoint = nodes_svc.node_endpoint(settings, node)
    if endpoint is None:
        return Source(
            node_name,
            None,
            folder,
            f"node {node_name} has no SFTP account (fsctl node edit {node_name} --sftp USER@HOST[:PORT])",
        )
    return Source(node_name, endpoint, folder)


@dataclasses.dataclass
class FetchPlan:
    """The transfers of a fetch, grouped by source (what `plan` reads from the database)."""

    transfers: list
    nodes: list  # the node of each transfer (None: the single FreeSWITCH)
    groups: dict  # node -> (Source, [indexes into transfers])


@dataclasses.dataclass
class FetchReport:
    """What `fetch` did: one sftp.Result per item (in order), the node of each, the sources not reached."""

    results: list
    nodes: list
    unreachable: dict = dataclasses.field(default_factory=dict)  # source label -> the error
    refused: dict = dataclasses.field(default_factory=dict)  # source label -> the error (host key, login...)
    missed: dict = dataclasses.field(default_factory=dict)  # source label -> files not fetched from it

    @property
    def failed(self) -> list:
        """The Results that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 everything fetched; 3 a source was unreachable (the others fetched); else 1 when a file failed."""
        if self.unreachable:
            return 3
        return 1 if self.failed else 0


def plan(items, settings) -> FetchPlan:
    """The transfers of (catalogue row, local path) items, each from its row's source (reads the nodes)."""
    from . import sftp

    known = {n.name: n for n in Node.select()}
    sources, groups, transfers = {}, {}, []
    for index, (row, local) in enumerate(items):
        if row.node not in sources:
            sources[row.node] = source_of(settings, row.node, known)
        source = sources[row.node]
        remote = sftp.remote_join(source.remote_dir, recordings.check_relpath(row.path))
        transfers.append(sftp.Transfer(remote, local, row.size, row.sha256))
        groups.setdefault(row.node, (source, []))[1].append(index)
    return FetchPlan(transfers, [row.node for row, _ in items], groups)


def fetch(fetch_plan, jobs=None, progress=None, connect=None, started=None) -> FetchReport:
    """Run a FetchPlan: sources one after another, `jobs` connections each (default:
    sftp.default_jobs()); no database access.

    `connect(endpoint)`: the SFTP connection factory (fsctl.services.sftp.Connection).
    `started`: a Connection already under way (wait=False) to the recordings server of the
    settings, used for the files without a node, closed when there are none.
    """
    from . import sftp

    connect = connect or sftp.Connection
    transfers = fetch_plan.transfers
    report = FetchReport([None] * len(transfers), list(fetch_plan.nodes))
    try:
        for node, (source, indexes) in fetch_plan.groups.items():
            group = [transfers[i] for i in indexes]
            first = None
            if node is None and started is not None and started.endpoint == source.endpoint:
                first, started = started, None
            _fetch_group(sftp, report, source, indexes, group, jobs, progress, connect, first)
    finally:
        if started is not None:
            started.close()
    return report


def _fetch_group(sftp, report, source, indexes, group, jobs, progress, connect, started):
    """Fetch one source's files into the report."""
    if source.problem:
        results = _not_fetched(sftp, group, source.problem, progress)
        if started is not None:
            started.close()
    else:
        try:
            results = sftp.fetch_all(source.endpoint, group, jobs, progress=progress, connect=connect, started=started)
        except UnreachableError as exc:
            report.unreachable[source.label] = str(exc)
            results = _not_fetched(sftp, group, f"{source.label} unreachable", progress)
        except OperationError as exc:  # host key refused, login refused: fix it, then run again
            report.refused[source.label] = str(exc)
            results = _not_fetched(sftp, group, str(exc), progress)
    missed = sum(1 for r in results if r.status == "failed")
    if missed and (source.label in report.unreachable or source.label in report.refused):
        report.missed[source.label] = missed
    for i, result in zip(indexes, results):
        report.results[i] = result


def _not_fetched(sftp, transfers, reason, progress):
    """Results for transfers that cannot be fetched now: a complete local copy is still 'skipped'."""
    out = []
    for t in transfers:
        if sftp.local_complete(t):
            out.append(sftp.Result(t, "skipped"))
            if progress:
                progress(t, t.size)
        else:
            out.append(sftp.Result(t, "failed", error=f'"{t.remote_path}": not fetched: {reason}'))
    return out
