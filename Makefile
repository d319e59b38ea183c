# The two commands: `make dev` runs the product locally, `make test` runs
# every test. Both install what is missing first and skip what is there.
.PHONY: dev test install build bench page-figures profile

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

install:
	@scripts/install.sh

build: install
	@scripts/build.sh

# Figures, not pass/fail: the simulator's raw serve rate, the IP table's
# size and lookup time, the rules' CPU with and without their baselines and
# the baselines' bytes per person, then the ceiling,
# the pysnow baseline and ours on 350,000 events (bench/bench.mjs).
bench: build
	@cargo build --release --quiet -p snc-sim --examples
	@target/release/examples/serve_rate 1000000
	@cargo run --release --quiet -p snc-ipdata --example lookup_rate
	@cargo run --release --quiet -p snc-core --example detect_rate
	@node bench/bench.mjs

# Where the worker's isolate spends a backfill's time: a V8 CPU profile
# (bench/profile.mjs), printed and written to target/bench.
profile: build
	@cargo build --release --quiet -p snc-sim
	@node bench/profile.mjs

# The connect page's gzip bytes and its time until the form accepts input.
page-figures: build
	@node bench/page.mjs
