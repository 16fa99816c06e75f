# pr-digest: every entry point a developer or CI needs. `make help` lists them.

SHELL := /bin/bash
VENV := .venv
VENV_STAMP := $(VENV)/.installed
# Lambda architecture for `make build`: arm64 (what the SAM template deploys) or x86-64.
LAMBDA_ARCH ?= arm64
FUNCTIONS := connect-session analyze-api worker nango-webhook

.PHONY: help venv demo offline dev test lint build bench redrive clean

help:
	@echo "make demo    run the whole pipeline offline on the local stack (moto, cargo lambda watch, stand-ins)"
	@echo "make test    run every test, moto server included, and cfn-lint on the SAM template"
	@echo "make offline run the local stack with the upstream stand-in until Ctrl-C, to try the API by hand"
	@echo "make dev     run the local stack against the real Nango, GitHub and Anthropic (keys from .env)"
	@echo "make lint    cargo fmt --check and clippy with warnings as errors"
	@echo "make build   cargo lambda build --release for every function (LAMBDA_ARCH=arm64|x86-64)"
	@echo "make bench   run the benchmarks"
	@echo "make redrive DEAD_LETTER_QUEUE_URL=... ANALYSIS_QUEUE_URL=...  move dead-lettered messages back to the queue"

$(VENV_STAMP): infra/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r infra/requirements.txt
	touch $@

venv: $(VENV_STAMP)

demo: $(VENV_STAMP)
	bash infra/local/stack.sh demo

# Runs stack.sh in a mode that runs until stopped. An interrupt (130), a
# hang-up (129) or a termination (143) is the normal way to stop it.
run_until_stopped = bash infra/local/stack.sh $(1) || { status=$$?; case $$status in 129|130|143) ;; *) exit $$status ;; esac; }

offline: $(VENV_STAMP)
	$(call run_until_stopped,offline)

dev: $(VENV_STAMP)
	$(call run_until_stopped,dev)

test: $(VENV_STAMP)
	$(VENV)/bin/cfn-lint infra/template.yaml
	infra/local/with-moto.sh cargo test --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

build: $(VENV_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --$(LAMBDA_ARCH) $(addprefix --bin ,$(FUNCTIONS))

bench:
	cargo bench -p pr-digest

# Uses the standard AWS credentials and region, or AWS_ENDPOINT_URL for moto.
redrive:
	@test -n "$(DEAD_LETTER_QUEUE_URL)" || { echo "set DEAD_LETTER_QUEUE_URL (the stack output DeadLetterQueueUrl)"; exit 2; }
	@test -n "$(ANALYSIS_QUEUE_URL)" || { echo "set ANALYSIS_QUEUE_URL (the stack output QueueUrl)"; exit 2; }
	DEAD_LETTER_QUEUE_URL="$(DEAD_LETTER_QUEUE_URL)" ANALYSIS_QUEUE_URL="$(ANALYSIS_QUEUE_URL)" \
		cargo run --quiet -p local-stack --bin redrive

clean:
	cargo clean
	rm -rf $(VENV) .local
