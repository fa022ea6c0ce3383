"""`python -m orchestrator.batch`: the batch runner (orchestrator/batch/__init__.py). Renderer factories
import `orchestrator.batch` too, so running main from that one module keeps one set of classes."""

from orchestrator.batch import main

main()
