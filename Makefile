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

# Figures, not pass/fail: the simulator's raw serve rate (1,000,000 records in
# pages of 10,000). The full benchmark of issue 7 will grow here.
bench: install
	@cargo run --release --quiet -p snc-sim --example serve_rate -- 1000000
