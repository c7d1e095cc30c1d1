# The two set-up commands of the README. Both work on a fresh clone.
.PHONY: run test
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
