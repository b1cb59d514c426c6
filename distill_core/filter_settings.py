"""The `filter` section of the run config: which filters run, with what thresholds.

Kept apart from `config.py` (which re-exports `FilterSection`) so that the filter
package and the config can both import it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualitySection(_Settings):
    enabled: bool = Field(default=False, description="Drop too short/long or non-text rows.")
    min_words: int = Field(default=1, ge=0, description="Fewer words: too_short.")
    max_words: int = Field(default=512, ge=1, description="More words: too_long.")
    min_alpha_fraction: float = Field(
        default=0.5, ge=0, le=1, description="Smaller share of letters: mostly_non_text.")


class NearDedupSection(_Settings):
    enabled: bool = Field(default=False, description="MinHash LSH near-duplicate removal.")
    shingle: int = Field(default=3, ge=1, description="Words per shingle.")
    num_perm: int = Field(default=128, ge=16, description="MinHash permutations.")
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard threshold.")
    seed: int = Field(default=1, description="MinHash seed.")


class SemanticDedupSection(_Settings):
    enabled: bool = Field(default=False, description="SemDeDup on the embeddings.")
    epsilon: float = Field(default=0.95, gt=0, le=1, description="Cosine threshold.")
    cluster_size: int = Field(default=200, ge=2, description="Rows per k-means cluster.")
    seed: int = Field(default=0, description="k-means seed.")


class ContaminationSection(_Settings):
    enabled: bool = Field(default=True, description="Drop rows that copy evaluation data.")
    ngram: int = Field(default=13, ge=1, description="Shared word n-gram that contaminates.")
    embedding_threshold: float | None = Field(
        default=0.95, gt=0, le=1,
        description="Cosine to an evaluation text that contaminates; null turns it off.")


class TeacherConsistencySection(_Settings):
    enabled: bool = Field(default=False, description="Require teacher agreement.")
    tau: float = Field(default=0.5, ge=0, le=1, description="Minimum teacher p(label).")


class FilterSection(_Settings):
    corpus: bool | None = Field(
        default=None, description="Also run the filters on the training corpus before "
        "selection (the `clean` stage), with the same rejects and funnel. Unset: on for "
        "`synthesize.method: auto` and for learned labels or weights, whose choice and "
        "solution hold only for rows no later filter drops; off otherwise (the run config "
        "records the value it resolved to).")
    quality: QualitySection = Field(default_factory=QualitySection)
    exact_dedup: bool = Field(default=True, description="Drop repeats of normalised text.")
    near_dedup: NearDedupSection = Field(default_factory=NearDedupSection)
    semantic_dedup: SemanticDedupSection = Field(default_factory=SemanticDedupSection)
    contamination: ContaminationSection = Field(default_factory=ContaminationSection)
    teacher_consistency: TeacherConsistencySection = Field(
        default_factory=TeacherConsistencySection)

    def enabled_names(self) -> list[str]:
        """The filters that run, in the order they run (the budget cut aside)."""
        return [name for name, on in (
            ("quality", self.quality.enabled), ("exact_dedup", self.exact_dedup),
            ("near_dedup", self.near_dedup.enabled),
            ("contamination", self.contamination.enabled),
            ("teacher_consistency", self.teacher_consistency.enabled),
            ("semantic_dedup", self.semantic_dedup.enabled)) if on]
