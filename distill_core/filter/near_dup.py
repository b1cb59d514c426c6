"""Near duplicates: MinHash LSH (datasketch) on word shingles of the normalised text.

Rows whose estimated Jaccard similarity is at least `threshold` are linked;
each connected set keeps its first row in priority order (best rank, or
earliest in the file) and drops the others with the similarity to the kept
row. Signatures are built with `MinHash.bulk` and inserted in one LSH
insertion session.

Reason: `near_duplicate`. References: Broder 1997; datasketch's MinHashLSH.
"""

from __future__ import annotations

from distill_core.filter.base import Drop, FilterInput, group_positions


def word_shingles(text: str, size: int) -> list[bytes]:
    """Distinct word n-grams of a normalised text; the whole text when it is shorter."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words).encode("utf-8")]
    return list(dict.fromkeys(" ".join(words[i:i + size]).encode("utf-8")
                              for i in range(len(words) - size + 1)))


def minhash_signatures(texts: list[str], shingle: int, num_perm: int, seed: int) -> list:
    from datasketch import MinHash  # imported when used: a cached rerun needs none of it

    return MinHash.bulk([word_shingles(t, shingle) for t in texts], num_perm=num_perm,
                        seed=seed)


def near_duplicate_clusters(signatures: list, threshold: float, num_perm: int
                            ) -> list[tuple[int, int, int, float]]:
    """(dropped, kept, nearest, jaccard) for every row of a cluster but its first.

    `kept` is the cluster's first row; `nearest` the row it is most similar to.
    """
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for index, signature in enumerate(signatures):
            session.insert(index, signature, check_duplication=False)
    parent = list(range(len(signatures)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    similarity: dict[int, tuple[int, float]] = {}
    for index, signature in enumerate(signatures):
        for other in lsh.query(signature):
            if other == index:
                continue
            jaccard = float(signature.jaccard(signatures[other]))
            if jaccard < threshold:
                continue  # an LSH candidate that the signatures do not confirm
            a, b = root(index), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
            if index not in similarity or similarity[index][1] < jaccard:
                similarity[index] = (other, jaccard)
    return [(i, root(i), *similarity[i]) for i in range(len(signatures)) if root(i) != i]


def near_dedup(data: FilterInput, shingle: int, num_perm: int, threshold: float,
               seed: int) -> list[Drop]:
    texts, ids = data.normalized_texts(), data.ids()
    drops = []
    for rows in group_positions(data.groups):
        signatures = minhash_signatures([texts[r] for r in rows], shingle, num_perm, seed)
        for dropped, kept, nearest, jaccard in near_duplicate_clusters(signatures, threshold,
                                                                       num_perm):
            drops.append(Drop(int(rows[dropped]), "near_duplicate",
                              f"estimated Jaccard {jaccard:.2f} with {ids[rows[nearest]]}; "
                              f"cluster keeps {ids[rows[kept]]}"))
    return sorted(drops, key=lambda d: d.row)
