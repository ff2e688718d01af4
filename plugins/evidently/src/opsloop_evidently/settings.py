"""Settings of the evidently plugin: the ``[plugin.evidently]`` table of opsloop.toml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Drift-method options of the ``evidently`` and ``psi-ks`` detectors."""

    model_config = ConfigDict(extra="forbid")

    # Evidently: one stattest for every column ("ks", "psi", "wasserstein", "jensenshannon",
    # "chisquare", ...). None lets Evidently pick per column type and window size.
    method: str | None = None
    # Evidently: the per-column threshold of that method; None uses the method's default.
    threshold: float | None = Field(default=None, gt=0)
    # psi-ks: family-wise false-alarm rate of the KS / chi-square tests (Bonferroni-corrected).
    ks_alpha: float = Field(default=0.05, gt=0, lt=1)
    # psi-ks: a feature drifts when its PSI exceeds this.
    psi_threshold: float = Field(default=0.2, gt=0)
    # psi-ks: most reference-quantile bins for PSI (fewer on small windows, see the docs).
    psi_bins: int = Field(default=10, ge=2, le=100)
    # Both: the dataset drifts when at least this share of the columns drifted. Their
    # per-column verdicts are not both significant and material, so one column is not
    # enough. Unset: [monitor] drift_share when it is above 0, else 0.5.
    drift_share: float | None = Field(default=None, ge=0, le=1)
