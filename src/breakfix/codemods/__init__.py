"""The one registry of breakfix codemods, in the order the classifier tries them (safest first)."""

from __future__ import annotations

from breakfix.codemods._base import BreakfixCodemod, FixRequest
from breakfix.codemods.compile_paths import CompileOnlyPath, DisabledHelper
from breakfix.codemods.control_flow.branch import DataDependentBranch
from breakfix.codemods.control_flow.expert_loop import DataDependentExpertLoop
from breakfix.codemods.control_flow.tail import DataDependentTail
from breakfix.codemods.control_flow.validation import ValidationRaise
from breakfix.codemods.copies import AttributeReassignedFromItself, DeepcopyOfTensor
from breakfix.codemods.escape_hatches import UntraceablePureHelper
from breakfix.codemods.host_syncs import IndexByScalarTensor, SizeAssertOnTensor, SortedTensors, TensorBoundsOfArange
from breakfix.codemods.io_split import BreakInLibraryCall, IoInCompiledRegion, OpaqueLoopIteration
from breakfix.codemods.iterators import IteratorInput
from breakfix.codemods.opaque_ops import NumpyScalarMath, OpaqueComputation, UntracedNumpyFunction
from breakfix.codemods.random_streams import NoneGeneratorOfRandomFactory
from breakfix.codemods.side_effects import LoggingInCompiledRegion, PrintInCompiledRegion, WarningOnceInCompiledRegion

REGISTRY: tuple[type[BreakfixCodemod], ...] = (
    IteratorInput,
    DeepcopyOfTensor,
    AttributeReassignedFromItself,
    PrintInCompiledRegion,
    WarningOnceInCompiledRegion,
    LoggingInCompiledRegion,
    CompileOnlyPath,
    DataDependentBranch,
    DataDependentExpertLoop,
    DataDependentTail,
    ValidationRaise,
    NumpyScalarMath,
    UntracedNumpyFunction,
    TensorBoundsOfArange,
    SizeAssertOnTensor,
    IndexByScalarTensor,
    SortedTensors,
    NoneGeneratorOfRandomFactory,
    UntraceablePureHelper,
    OpaqueComputation,
    DisabledHelper,
    OpaqueLoopIteration,
    IoInCompiledRegion,
    BreakInLibraryCall,
)

BY_CODE: dict[str, type[BreakfixCodemod]] = {codemod.CODE: codemod for codemod in REGISTRY}

# Every torch API some codemod relies on: the locate worker reports which the installed torch lacks.
REQUIRED_APIS: tuple[str, ...] = tuple(sorted({api for codemod in REGISTRY for api in codemod.REQUIRES}))

__all__ = ["BY_CODE", "REGISTRY", "REQUIRED_APIS", "BreakfixCodemod", "FixRequest"]
