"""The worker: the only place that imports user code, and the parent side that runs it.

Child side (imports torch and the user's code): ``zygote`` (process entry, fork per job),
``modes`` (locate, check, repeat), ``loader``, ``sandbox``, ``breaks``, ``compare``, ``facts``,
``torch_compat`` (every private torch hook). Parent side (never imports torch): ``pool`` runs
jobs; ``protocol`` types the requests and responses both sides exchange.
"""
