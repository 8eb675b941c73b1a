"""Safety properties of Raft (paper Figure 3), checked on every simulated run.

* Election safety: at most one leader per term.
* Log matching: if two logs hold an entry with the same index and term, the logs are
  identical up to that index.
* Leader completeness: a leader holds every entry committed before it was elected.
* State machine safety: no two nodes apply different entries at the same index.

Committed entries are learned from what nodes apply (a node only applies committed
entries), so the checks see exactly what clients could have observed.
"""

from __future__ import annotations

from cairn.raft.core import RaftNode
from cairn.raft.types import Entry


class RaftSafetyChecker:
    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, tuple[int, bytes]] = {}
        self.violations: list[str] = []
        self.applied_entries = 0

    def _violation(self, text: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(text)

    def on_leader(self, node_id: int, core: RaftNode) -> None:
        term = core.term
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            self._violation(f"election safety: nodes {other} and {node_id} lead term {term}")
        log = core.log
        for index, (entry_term, _) in self.committed.items():
            if index > log.snapshot_index and log.term(index) != entry_term:
                self._violation(
                    f"leader completeness: leader {node_id} of term {term} lacks committed "
                    f"entry {index} (term {entry_term})"
                )
                return

    def on_apply(self, node_id: int, entry: Entry) -> None:
        self.applied_entries += 1
        seen = self.committed.setdefault(entry.index, (entry.term, entry.data))
        if seen != (entry.term, entry.data):
            self._violation(
                f"state machine safety: node {node_id} applied term {entry.term} at "
                f"{entry.index}, another node applied term {seen[0]}"
            )

    def check_log_matching(self, cores: dict[int, RaftNode]) -> None:
        ids = sorted(cores)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                self._check_pair(a, cores[a], b, cores[b])

    def _check_pair(self, a: int, log_a: RaftNode, b: int, log_b: RaftNode) -> None:
        la, lb = log_a.log, log_b.log
        lo = max(la.snapshot_index, lb.snapshot_index) + 1
        hi = min(la.last_index(), lb.last_index())
        matched = False
        for index in range(hi, lo - 1, -1):
            ea, eb = la.entry(index), lb.entry(index)
            if ea.term == eb.term:
                matched = True
            if matched and ea != eb:
                self._violation(f"log matching: nodes {a} and {b} differ at index {index}")
                return
