"""``python -m breakfix.worker --zygote`` or ``python -m breakfix.worker REQUEST.json RESPONSE.json``."""

import sys

from breakfix.worker.zygote import main, serve

if sys.argv[1:] == ["--zygote"]:
    serve()
else:
    sys.exit(main(sys.argv[1:]))
