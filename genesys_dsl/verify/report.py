"""The result of `verify`: check's Report, plus the measured figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..check.checker import Report, diagnostics_dict


@dataclass
class VerifyReport(Report):
    """`ok` when no check found an error. `figures` holds what was measured, by check:
    "budget", "causality", "gradients", "efficiency" (plain JSON-ready values)."""

    scale: str | None = None
    figures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**diagnostics_dict(self.diagnostics), "scale": self.scale, "figures": self.figures}

    def summary(self) -> str:
        """A few lines of the main figures, for the command line."""
        errors, warnings = len(self.errors), len(self.warnings)
        name = self.design.name if self.design is not None else "design"
        lines = [f"verified {name} at {self.scale}: {errors} error{'s' * (errors != 1)}, "
                 f"{warnings} warning{'s' * (warnings != 1)}"]
        budget = self.figures.get("budget")
        if budget:
            line = f"  parameters {budget['params']:,} ({budget['ratio']:.2f}x the target {budget['target']:,})"
            fit = budget.get("fit")
            if fit:
                line += f"; fits at d_model={fit['d_model']}, n_layers={fit['n_layers']}: {fit['params']:,}"
            lines.append(line)
        causality = self.figures.get("causality")
        if causality and "cuts" in causality:
            lines.append(f"  causality: {causality['cuts']} cut points at lengths "
                         f"{', '.join(map(str, causality['lengths']))}, largest change before a cut "
                         f"{causality['max_change']:.1e} (relative)")
        eff = self.figures.get("efficiency")
        if eff:
            lines.append(f"  training step: {eff['time_s'] * 1e3:.1f} ms ({eff['time_ratio']:.2f}x the "
                         f"transformer), peak memory {eff['memory_bytes'] / 2**20:.1f} MiB "
                         f"({eff['memory_ratio']:.2f}x), on {eff['device']}")
        return "\n".join(lines)
