#!/bin/sh
# On a GPU machine without a package index, from the checkout's root (docs/gpu.md), for
# each folder `make gpu-bundle` wrote:
#   sh binwrn/gpucheck/stage.sh .gpudata/partK            copy this folder's files to the stage
#   sh binwrn/gpucheck/stage.sh .gpudata/partN --finish   ... then check every file's sha256,
#       unpack CIFAR-10 to $STAGE/cifar10 and install the wheels to $STAGE/site (no index)
# The stage lives outside the checkout ($BINWRN_STAGE, default /tmp/binwrn-stage), so a
# transfer that replaces the checkout keeps it. `make gpu-bundle REHEARSE=1` runs this here.
set -eu
STAGE=${BINWRN_STAGE:-/tmp/binwrn-stage}
mkdir -p "$STAGE"
if [ -d "$1" ]; then
  cp -r "$1"/. "$STAGE"/
else
  echo "stage.sh: $1 is not here: copy that folder of .gpudata/ to this machine first" >&2
  exit 2
fi
echo "staged: $(ls "$STAGE" | tr '\n' ' ')"
[ "${2:-}" = "--finish" ] || exit 0
cd "$STAGE"
for manifest in MANIFEST-part*.sha256; do
  sha256sum --quiet -c "$manifest" || { echo "stage.sh: $manifest fails: send that folder again" >&2; exit 2; }
done
cat cifar10-png.tar.gz.part-* > cifar10-png.tar.gz
sha256sum --quiet -c cifar10-png.tar.gz.sha256 || { echo "stage.sh: a CIFAR-10 part is missing: send its folder again" >&2; exit 2; }
rm -rf cifar10 && mkdir cifar10 && tar xzf cifar10-png.tar.gz -C cifar10
# --no-deps: the requirements name every package that travels; the rest is the image's.
python3 -m pip install -q --no-index --find-links wheels --no-deps --no-compile \
  --no-cache-dir --upgrade --target "$STAGE/site" -r wheels/requirements.txt
PYTHONPATH="$STAGE/site" python3 -c "import hydra, omegaconf, mlflow, sqlalchemy, alembic; \
print('imports: hydra', hydra.__version__, 'mlflow', mlflow.__version__)" \
  || { echo "stage.sh: the carried wheels do not import with this image's packages" >&2; exit 2; }
echo "ready: CIFAR-10 in $STAGE/cifar10 ($(find cifar10 -name '*.png' | wc -l) images), wheels in $STAGE/site"
