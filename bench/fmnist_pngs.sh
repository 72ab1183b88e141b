# Sourced by the Fashion-MNIST benchmarks: fmnist_pngs FOLDER makes sure the imagefolder FOLDER
# (a path ending in /fmnist) holds all 70,000 images of Debian's dataset-fashion-mnist as PNGs,
# writing them once with scripts/make_dataset_fixtures.py (which names its folder fmnist).
fmnist_pngs() {
  local folder="$1"
  if [ "$(find "$folder" -name '*.png' 2>/dev/null | wc -l)" != 70000 ]; then
    python3 "$(dirname "${BASH_SOURCE[0]}")/../scripts/make_dataset_fixtures.py" \
      "$(dirname "$folder")" --per-class 6000 --test-per-class 1000 >/dev/null
  fi
}
