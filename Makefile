# Shortcuts; each target is a `python3 dev.py` command (which needs only Python and git).
.PHONY: demo test bench ci

demo:
	python3 dev.py demo

test:
	python3 dev.py test

bench:
	python3 dev.py bench

ci:
	bash .ci/run
