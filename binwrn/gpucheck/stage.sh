#!/bin/sh
# On a lent GPU machine, from the repository root (README, "Checking on a GPU"):
#   sh binwrn/gpucheck/stage.sh .gpudata/callK            copy this call's files to the stage
#   sh binwrn/gpucheck/stage.sh .gpudata/callN --finish   ... then check every file's sha256,
#       unpack CIFAR-10 to $STAGE/cifar10 and install the wheels to $STAGE/site
# The stage lives outside the repository (/tmp/binwrn-stage), so later calls, which replace
# the working tree, keep it for as long as the machine stays warm.
set -eu
STAGE=${BINWRN_STAGE:-/tmp/binwrn-stage}
mkdir -p "$STAGE"
if [ -d "$1" ]; then
  cp -r "$1"/. "$STAGE"/
else
  echo "stage.sh: $1 is not here: carry it (carry: [\"$1\"])" >&2
  exit 2
fi
echo "staged: $(ls "$STAGE" | tr '\n' ' ')"
[ "${2:-}" = "--finish" ] || exit 0
cd "$STAGE"
for manifest in MANIFEST-call*.sha256; do
  sha256sum --quiet -c "$manifest" || { echo "stage.sh: $manifest fails: redo that call" >&2; exit 2; }
done
cat cifar10-png.tar.gz.part-* > cifar10-png.tar.gz
sha256sum --quiet -c cifar10-png.tar.gz.sha256 || { echo "stage.sh: a CIFAR-10 part is missing: redo its call" >&2; exit 2; }
rm -rf cifar10 && mkdir cifar10 && tar xzf cifar10-png.tar.gz -C cifar10
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$STAGE/site" wheels/*.whl
PYTHONPATH="$STAGE/site" python3 -c "import hydra, omegaconf, mlflow, sqlalchemy, alembic; \
print('imports: hydra', hydra.__version__, 'mlflow', mlflow.__version__)" \
  || { echo "stage.sh: the carried wheels do not import with this image's packages" >&2; exit 2; }
echo "ready: CIFAR-10 in $STAGE/cifar10 ($(find cifar10 -name '*.png' | wc -l) images), wheels in $STAGE/site"
