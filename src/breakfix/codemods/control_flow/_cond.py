"""What the ``torch.cond`` rewrites of the family share: the call they write."""

from __future__ import annotations

import libcst as cst

COND = "torch.cond"


def cond_call(arguments: list[cst.BaseExpression], operands: list[str]) -> cst.Call:
    args = [cst.Arg(a) for a in arguments]
    if operands:
        args.append(cst.Arg(cst.parse_expression(f"({', '.join(operands)},)")))
    return cst.Call(func=cst.parse_expression(COND), args=args)
