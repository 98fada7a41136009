"""The report's section on candidate subgroups: groups that no metadata column names.

``ClusterAuditor.fit`` searches what the columns do not explain for groups that sit apart
(each candidate two findings: kind "subgroup", a second mode, and kind "far_tail", rows far
out; ``subgroups_``).  This section lists every candidate with
its size, statistic, p- and q-value and its first members by id, and shows each
significant one as the clusters are shown (a few members, the mean of the members
against the mean of the rest, their difference), with the call that hands it to the
:class:`~latentaudit.Explainer`.
"""

from __future__ import annotations

import numpy as np

from ._build import AuditContext, Unavailable
from ._report import ReportSection, ReportTable

__all__ = ["subgroup_images"]

_MEMBERS_LISTED = 10


def subgroup_images(section: ReportSection, ctx: AuditContext) -> None:
    """Every candidate subgroup: members, size, statistic, p and q; images of the
    significant ones (members' mean minus the rest's) and their hand-off to the Explainer."""
    from ._sections import group_images

    auditor = ctx.auditor
    if auditor is None:
        raise Unavailable("no fitted ClusterAuditor was given")
    candidates = auditor.subgroups_
    if not len(candidates):
        section.note = ("The search for groups that no column names returned no candidate "
                        "(it needs a metadata column to test and at least 100 rows; "
                        "ClusterAuditor(n_subgroups=0) switches it off).")
        return
    table = candidates[["subgroup", "space", "evidence", "n", "fraction", "separation",
                        "effect_size", "q_mode", "q_far"]].copy()
    members = {int(k): auditor.subgroup_members(int(k)) for k in table["subgroup"]}
    table["first members"] = [
        ", ".join(str(i) for i in members[int(k)][auditor.id_column_].head(_MEMBERS_LISTED))
        for k in table["subgroup"]]
    section.paragraphs.append(
        "What the tested metadata columns explain was removed from the embedding, and the "
        "rest was searched, on half of the subjects, for groups of 5% to 50% that sit apart "
        "along one direction; each candidate was tested on the other half (is there a "
        "second mode where the search found the group, or more subjects far out along its "
        "direction than a tail would hold?) inside the false discovery rate of all "
        "findings. Members: ClusterAuditor.subgroup_members(k) "
        "(most typical first).")
    if candidates["evidence"].eq("far tail").any():
        section.paragraphs.append(
            "A candidate whose only evidence is 'far tail' (finding kind 'far_tail') has no "
            "second mode: more of its subjects lie far out along its direction than a tail "
            "holds. That is what a group of varying severity looks like, and also what an "
            "encoder that places some ordinary images far out gives; compare its members' "
            "images with the rest's before reading it as a group.")
    section.tables.append(ReportTable(
        "Candidate subgroups", table,
        "space: where the group was found (the embedding, or the images' statistics); "
        "evidence: what passes q: a second mode on held-out subjects (q_mode), more of "
        "them far out than a tail holds (q_far), both or none; "
        "separation: distance of the members' mean from the rest's on held-out subjects, "
        "in the rest's standard deviations; effect_size: correlation ratio; q_mode, q_far: "
        "Benjamini-Hochberg over all findings; first members: ids, most typical first."))
    alpha = float(auditor.alpha)
    shown = [int(k) for k, q_mode, q_far in zip(table["subgroup"], table["q_mode"],
                                                 table["q_far"], strict=True)
             if np.fmin(q_mode, q_far) <= alpha]  # (an old save has no q_far: NaN)
    shown = shown[: int(ctx.options["explain"]["clusters"])]
    data = {"candidates": table.drop(columns=["first members"]),
            "members": {str(k): [str(i) for i in frame[auditor.id_column_]]
                        for k, frame in members.items()}, "shown": shown}
    if not shown:
        section.remarks.append(f"No candidate passes q ≤ {alpha:g}; none is shown as images.")
        section.data = data
        return
    if ctx.row_images is None:
        section.note = f"No images of the significant candidates: {ctx.image_note}."
        section.data = data
        return
    n_images = int(ctx.options["explain"]["images"])
    for k in shown:
        labels = auditor.subgroup_labels(k).astype(np.int64)  # 1: member, 0: the rest
        data[f"subgroup {k}"] = group_images(
            section, ctx.row_images, labels, 1, 0, f"candidate subgroup {k}",
            "the other subjects", n_images, ctx.random_state + k)
    section.paragraphs.append(
        "For each significant candidate, a few members and the mean of its members beside "
        "the mean of everyone else, with their difference. To see where a classifier finds "
        "the difference, hand the candidate to the Explainer as a delineation: "
        "la.Explainer().fit(emb, auditor.subgroup_labels(k).astype(int)), then "
        "la.AuditReport.from_fitted(emb, explainer=explainer, labels=...).")
    section.data = data
