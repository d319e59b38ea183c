# The two commands: `make dev` runs the product locally, `make test` runs
# every test. Both install what is missing first and skip what is there.
.PHONY: dev test install build bench

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

install:
	@scripts/install.sh

build: install
	@scripts/build.sh
