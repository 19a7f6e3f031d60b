def edit_distance(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def ctc_collapse(ids, blank=0):
    out, last = [], None
    for i in ids:
        if i != last and i != blank:
            out.append(i)
        last = i
    return out


def char_error_rate(pred_ids, target_ids, blank=0):
    errors = total = 0
    for pred, target in zip(pred_ids, target_ids):
        errors += edit_distance(target, ctc_collapse(pred, blank))
        total += len(target)
    return errors / max(total, 1)
