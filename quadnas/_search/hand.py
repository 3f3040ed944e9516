"""Hand designs: the uniform archs a person would pick under a budget, one of each kernel/expansion family.

They are judged among a search's finalists, so a search that finds nothing better ends with one of them.
"""

from __future__ import annotations

from quadnas._search.results import Candidate
from quadnas._search.targets import Targets
from quadnas.space import IDENTITY, Arch, BlockChoice, SearchSpace

HAND_DESIGNED = "hand-designed"


def uniform_archs(space: SearchSpace) -> list[Arch]:
    """Every uniform hand design of the space: one plain (non-enhanced) choice in every active block; stage s
    keeps the first max(1, round(j * depth_s / J)) of its blocks active (J the deepest stage's depth, j = 1..J)."""
    plain = [c for c in space.choices if not c.is_identity and not c.enhanced]
    deepest = max(space.depths)
    found: list[Arch] = []
    for choice in plain:
        for j in range(1, deepest + 1):
            blocks: list[BlockChoice] = []
            for depth in space.depths:
                active = max(1, round(j * depth / deepest))
                blocks += [choice] * active + [IDENTITY] * (depth - active)
            found.append(Arch(tuple(blocks)))
    return list(dict.fromkeys(found))


def family(arch: Arch) -> str:
    """The kernel/expansion family of a uniform arch: its one non-identity choice (`k3e2`)."""
    return str(next(c for c in arch.blocks if not c.is_identity))


def hand_designs(space: SearchSpace, targets: Targets) -> list[Candidate]:
    """Of each family's uniform archs within every budget, the one of the largest share of its tightest budget
    (the most a person would fit); families with none that fits are left out."""
    best: dict[str, tuple[float, Arch, dict[str, float]]] = {}
    budgets = targets.budgets
    for arch in uniform_archs(space):
        latencies = targets.predict(arch)
        if not targets.fits(latencies):
            continue
        share = max(budget.share(latencies[label]) for label, budget in budgets.items())
        name = family(arch)
        if name not in best or share > best[name][0]:
            best[name] = (share, arch, latencies)
    return [
        Candidate(arch, None, latencies, None, origin=HAND_DESIGNED)
        for _, arch, latencies in sorted(best.values(), key=lambda b: -b[0])
    ]
