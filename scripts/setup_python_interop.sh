#!/usr/bin/env bash
# Creates one venv per supported release of the official Python `modelscope` package, with its
# `datasets` extra (MsDataset), in build/venv-modelscope-<version>. The interop end-to-end tests
# (tests/e2e/test_hub_interop.py, test_hub_cache_interop.py) run each client against
# `ms hub serve` and share caches and logins with `ms`.
#
# The versions are pinned:
#   1.36.3  the last release whose hub client lives in the package itself (cache with a .msc
#           index, credentials in $MODELSCOPE_CREDENTIALS_PATH);
#   1.40.2  the newest, a shim over modelscope-hub (snapshot cache folders, OpenAPI calls,
#           credentials in $MODELSCOPE_CREDENTIALS_PATH/credentials).
# The packages that carry each client's behaviour are pinned too, at the versions tested with it
# (modelscope-hub holds 1.40's whole hub client; MsDataset runs on datasets and huggingface_hub),
# so that a clean checkout tests what was tested. A venv that already holds them is kept; the
# others are made in parallel.
#
# It also makes build/venv-tensorboard with the `tensorboard` package (the newest release, 2.21.0,
# and the protobuf it parses event files with), for tests/e2e/test_tensorboard.py: TensorBoard's own
# readers read the event files of ms's TensorboardWriter.
#
# And build/venv-transformers with Hugging Face `transformers`, for tests/e2e/test_train_interop.py:
# AutoModelForSequenceClassification / AutoTokenizer load the output/ folder and the checkpoints of
# `ms train` and must give ms's scores. The venv sees the system site-packages, so its torch is
# Debian's python3-torch 1.13, the LibTorch ms links (/usr/bin/python3 is the Debian Python that
# owns it; scripts/setup.sh installs python3-venv for it). transformers is pinned at 4.49.0, the
# newest release whose BERT runs on torch 1.13:
#   5.x          refuses it ("BertForSequenceClassification requires PyTorch >= 2.6");
#   4.52 - 4.57  disable torch below 2.1 at import ("Disabling PyTorch because PyTorch >= 2.1 is
#                required"), so every model class raises "requires the PyTorch library";
#   4.50 - 4.51  `import torch.distributed.tensor` in modeling_utils (a module of torch >= 2.5).
# tokenizers, safetensors and huggingface-hub (config and file loading) are pinned at the versions
# pip resolved with it and the test ran with.
#
# And build/venv-onnxruntime with onnxruntime (the newest release, 1.32.0, and what it needs,
# pinned by version and sha256 in scripts/requirements-onnxruntime.txt), for
# tests/e2e/test_export_onnx.py: onnxruntime runs the models of `ms export --format onnx` and must
# give `ms infer`'s outputs.
#
# And build/venv-datasets with Hugging Face `datasets` 5.2.0, the newest release (pinned by version
# and sha256 in scripts/requirements-datasets.txt, with pyarrow and pillow): tests/e2e/
# test_dataset.py records what it reads from its fixtures, as it does with the 4.8.4 of the newest
# modelscope venv, and ms must read the same under both. Its wheels install in about 20 s.
#
# And build/venv-torch-newest with the newest torch and transformers (pinned by version and sha256
# in scripts/requirements-torch-newest.txt; about 5 GB with torch's CUDA libraries, which PyPI's
# torch needs to import): the interop tests load ms's files in it as in build/venv-transformers,
# and run ms under its torchrun, whose store speaks torch 2.x's protocol.
#
#   bash scripts/setup_python_interop.sh
#   MS_MODELSCOPE_VERSIONS="1.40.2" bash scripts/setup_python_interop.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
read -r -a versions <<<"${MS_MODELSCOPE_VERSIONS:-1.36.3 1.40.2}"

pins() {  # pins VERSION: the requirements of that release's venv
  case "$1" in
    1.36.3) echo "modelscope[datasets]==1.36.3 datasets==4.8.4 huggingface-hub==1.33.0" ;;
    1.40.2) echo "modelscope[datasets]==1.40.2 modelscope-hub==0.5.1 datasets==4.8.4 huggingface-hub==1.33.0" ;;
    *) echo "modelscope[datasets]==$1" ;;
  esac
}

ready() {  # ready VENV VERSION: the venv holds every pinned package at its version
  # shellcheck disable=SC2046
  "$1/bin/python" - $(pins "$2") >/dev/null 2>&1 <<'PY'
import importlib.metadata, re, sys
for pin in sys.argv[1:]:
    name, version = re.sub(r"\[.*\]", "", pin).split("==")
    if importlib.metadata.version(name) != version:
        sys.exit(1)
import modelscope, datasets  # noqa: E401,F401 (they import)
PY
}

tensorboard_pins="tensorboard==2.21.0 protobuf==7.36.2"
tensorboard_ready() {  # tensorboard_ready VENV: the venv holds tensorboard and protobuf as pinned
  # shellcheck disable=SC2086
  "$1/bin/python" - $tensorboard_pins >/dev/null 2>&1 <<'PY'
import importlib.metadata, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if importlib.metadata.version(name) != version:
        sys.exit(1)
from tensorboard.backend.event_processing import event_accumulator  # noqa: F401 (it imports)
PY
}

transformers_python="${TRANSFORMERS_PYTHON:-/usr/bin/python3}"
transformers_pins="transformers==4.49.0 tokenizers==0.21.4 safetensors==0.8.0 huggingface-hub==0.36.2"
transformers_ready() {  # transformers_ready VENV: the venv holds the pins, and its BERT runs
  # shellcheck disable=SC2086
  "$1/bin/python" - $transformers_pins >/dev/null 2>&1 <<'PY'
import importlib.metadata, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if importlib.metadata.version(name) != version:
        sys.exit(1)
from transformers import BertForSequenceClassification  # noqa: F401 (its torch layer imports)
PY
}

# requirements_ready VENV REQUIREMENTS IMPORTS: the venv holds every package a hash-pinned
# requirements file pins, at its version, and the Python statement IMPORTS runs in it.
requirements_ready() {
  "$1/bin/python" - "$2" "$3" >/dev/null 2>&1 <<'PY'
import importlib.metadata, re, sys
for line in open(sys.argv[1]):
    m = re.match(r"([A-Za-z0-9_.-]+)==([^ ]+)", line)
    if m and importlib.metadata.version(m.group(1)) != m.group(2):
        sys.exit(1)
exec(sys.argv[2])
PY
}

onnxruntime_requirements="$root/scripts/requirements-onnxruntime.txt"
onnxruntime_ready() {  # onnxruntime_ready VENV
  requirements_ready "$1" "$onnxruntime_requirements" "import onnxruntime"
}

torch_newest_requirements="$root/scripts/requirements-torch-newest.txt"
torch_newest_ready() {  # torch_newest_ready VENV (transformers' BERT imports its torch layer)
  requirements_ready "$1" "$torch_newest_requirements" \
    "import torch, transformers; from transformers import BertForSequenceClassification"
}

datasets_requirements="$root/scripts/requirements-datasets.txt"
datasets_ready() {  # datasets_ready VENV
  requirements_ready "$1" "$datasets_requirements" "import datasets, pyarrow"
}

transformers_venv="$root/build/venv-transformers"
# Checked before any venv is started, so that a missing prerequisite stops nothing half made. Debian
# ships ensurepip (which venv needs for pip) in python3.11-venv, torch in python3-torch.
if ! transformers_ready "$transformers_venv" &&
  ! "$transformers_python" -c "import torch, ensurepip" >/dev/null 2>&1; then
  echo "setup_python_interop.sh: $transformers_python cannot import torch and ensurepip, which" \
    "build/venv-transformers needs: run scripts/setup.sh (Debian's python3-torch and" \
    "python3-venv), or set TRANSFORMERS_PYTHON to a Python 3 with torch 1.13 and venv" >&2
  exit 1
fi

pids=()
for version in "${versions[@]}"; do
  venv="$root/build/venv-modelscope-$version"
  if ready "$venv" "$version"; then
    continue
  fi
  mkdir -p "$root/build"
  (
    "$python" -m venv --clear "$venv"
    # shellcheck disable=SC2046
    "$venv/bin/pip" install --quiet --disable-pip-version-check $(pins "$version")
  ) >"$venv.log" 2>&1 &
  pids+=("$!:venv-modelscope-$version")
done
tensorboard_venv="$root/build/venv-tensorboard"
if ! tensorboard_ready "$tensorboard_venv"; then
  mkdir -p "$root/build"
  (
    "$python" -m venv --clear "$tensorboard_venv"
    # shellcheck disable=SC2086
    "$tensorboard_venv/bin/pip" install --quiet --disable-pip-version-check $tensorboard_pins
  ) >"$tensorboard_venv.log" 2>&1 &
  pids+=("$!:venv-tensorboard")
fi
if ! transformers_ready "$transformers_venv"; then
  mkdir -p "$root/build"
  (
    "$transformers_python" -m venv --clear --system-site-packages "$transformers_venv"
    # shellcheck disable=SC2086
    "$transformers_venv/bin/pip" install --quiet --disable-pip-version-check $transformers_pins
  ) >"$transformers_venv.log" 2>&1 &
  pids+=("$!:venv-transformers")
fi
start_hashed_venv() {  # start_hashed_venv NAME REQUIREMENTS [PIP_OPTION...]: makes build/NAME
  local name="$1" requirements="$2"
  shift 2
  mkdir -p "$root/build"
  (
    "$python" -m venv --clear "$root/build/$name"
    "$root/build/$name/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
      "$@" -r "$requirements"
  ) >"$root/build/$name.log" 2>&1 &
  pids+=("$!:$name")
}
onnxruntime_venv="$root/build/venv-onnxruntime"
onnxruntime_ready "$onnxruntime_venv" ||
  start_hashed_venv venv-onnxruntime "$onnxruntime_requirements"
datasets_venv="$root/build/venv-datasets"
# --no-compile: byte-compiling pandas, pyarrow and numpy at install was half of its time (42 s
# against 21 s on 2 busy cores); the tests import a few of their modules. Not for the venvs whose
# torch and transformers the tests import in many processes: without .pyc files, each import
# compiles them again where PYTHONDONTWRITEBYTECODE is set (test_train_interop took 195 s
# instead of 101 s).
datasets_ready "$datasets_venv" ||
  start_hashed_venv venv-datasets "$datasets_requirements" --no-compile
torch_newest_venv="$root/build/venv-torch-newest"
torch_newest_ready "$torch_newest_venv" ||
  start_hashed_venv venv-torch-newest "$torch_newest_requirements"
failed=0
for entry in "${pids[@]}"; do
  pid="${entry%%:*}" venv="${entry#*:}"
  if ! wait "$pid"; then
    echo "setup_python_interop.sh: making build/$venv failed:" >&2
    tail -n 30 "$root/build/$venv.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
for version in "${versions[@]}"; do
  venv="$root/build/venv-modelscope-$version"
  ready "$venv" "$version" || { echo "setup_python_interop.sh: $venv lacks modelscope $version" >&2; exit 1; }
  echo "modelscope $version in $venv"
done
tensorboard_ready "$tensorboard_venv" ||
  { echo "setup_python_interop.sh: $tensorboard_venv lacks $tensorboard_pins" >&2; exit 1; }
echo "$tensorboard_pins in $tensorboard_venv"
transformers_ready "$transformers_venv" || {
  echo "setup_python_interop.sh: $transformers_venv lacks $transformers_pins, or its BERT does not" \
    "import: $("$transformers_venv/bin/python" -c 'from transformers import BertForSequenceClassification' 2>&1 | tail -n 1)" >&2
  exit 1
}
echo "$transformers_pins in $transformers_venv"
onnxruntime_ready "$onnxruntime_venv" ||
  { echo "setup_python_interop.sh: $onnxruntime_venv lacks $onnxruntime_requirements's pins" >&2; exit 1; }
echo "onnxruntime in $onnxruntime_venv"
datasets_ready "$datasets_venv" ||
  { echo "setup_python_interop.sh: $datasets_venv lacks $datasets_requirements's pins" >&2; exit 1; }
echo "datasets (the newest) in $datasets_venv"
torch_newest_ready "$torch_newest_venv" || {
  echo "setup_python_interop.sh: $torch_newest_venv lacks $torch_newest_requirements's pins, or its" \
    "torch does not import: $("$torch_newest_venv/bin/python" -c 'import torch' 2>&1 | tail -n 1)" >&2
  exit 1
}
echo "torch and transformers (the newest) in $torch_newest_venv"
