#!/usr/bin/env bash
# Runs engine-api's cargo-fuzz targets (fuzz/) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS] [--regen-seeds]
#
# SECONDS (default 30) is each target's budget. Every target is built once,
# then run over a temporary copy of its seeds (fuzz/seeds/<target>/). Exits
# non-zero if any target finds a crash, and prints the artifact path.
#
# Environment:
#   FUZZ_SANITIZER   cargo fuzz --sanitizer value (default: address)
#   FUZZ_TARGETS     space-separated subset of targets (default: all)
#   CARGO_BUILD_JOBS parallel rustc jobs (default: 1; the machine is shared)
set -euo pipefail

budget=30
regen=0
for arg in "$@"; do
  case "$arg" in
    --regen-seeds) regen=1 ;;
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [--regen-seeds]" >&2; exit 2 ;;
    *) budget=$arg ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzz_dir=fuzz
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-address}

# Only a stable toolchain can be had here, and cargo fuzz passes the
# nightly-only -Zsanitizer=address (stable rustc refuses any -Z flag).
# RUSTC_BOOTSTRAP=1 lets stable accept it; the ASan runtime ships in stable's
# rust-std (librustc-stable_rt.asan.a), so the default sanitizer works as on
# nightly. (The coverage flags, -Cpasses=sancov-module and -Cllvm-args, are
# stable options: only the sanitizer needs the bootstrap.)
export RUSTC_BOOTSTRAP=1

now() { date +%s; }
step() { printf '==> %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  t=$(now)
  cargo install cargo-fuzz --locked
  step "cargo-fuzz installed in $(($(now) - t))s"
fi

mapfile -t all_targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

missing=0
for t in "${targets[@]}"; do
  [[ -d $fuzz_dir/seeds/$t ]] || missing=1
done
if ((regen || missing)); then
  step "generating seeds (fuzz/examples/gen_seeds.rs)"
  cargo run --quiet --manifest-path "$fuzz_dir/Cargo.toml" --example gen_seeds
fi

build_flags=(--fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer")
step "building ${#targets[@]} targets (sanitizer: $sanitizer)"
t=$(now)
if ((${#targets[@]} == ${#all_targets[@]})); then
  cargo fuzz build "${build_flags[@]}"
else
  for target in "${targets[@]}"; do cargo fuzz build "${build_flags[@]}" "$target"; done
fi
step "built in $(($(now) - t))s"
# cargo puts the binaries under CARGO_TARGET_DIR when it is set.
bin_dir=${CARGO_TARGET_DIR:-$fuzz_dir/target}/$(rustc -vV | sed -n 's/^host: //p')/release

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
  corpus=$work/corpus/$target
  log=$work/$target.log
  mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
  cp "$fuzz_dir/seeds/$target"/* "$corpus"/
  step "fuzzing $target for ${budget}s ($(ls "$corpus" | wc -l) seeds)"
  t=$(now)
  dict=()
  [[ -f $fuzz_dir/dicts/$target.dict ]] && dict=(-dict="$fuzz_dir/dicts/$target.dict")
  status=0
  # The binary built above, run directly: `cargo fuzz run` would first rebuild
  # whatever changed in the tree since. Crash inputs go to fuzz/artifacts/<target>/.
  # -timeout: a single input taking this long is reported as a crash (a hang).
  "$bin_dir/$target" "$corpus" -artifact_prefix="$fuzz_dir/artifacts/$target/" \
    -max_total_time="$budget" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 || true)
  if ((status == 0)); then
    echo "    ok: ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l), $(($(now) - t))s"
  else
    failed+=("$target")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    cp "$log" "$fuzz_dir/artifacts/$target/last-run.log"
    echo "    FAILED (exit $status) after $(($(now) - t))s (log: $fuzz_dir/artifacts/$target/last-run.log):"
    { grep -E -A1 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|^SUMMARY' "$log" || tail -n 20 "$log"; } |
      head -n 12 | sed 's/^/      /' || true
    if [[ -n $artifact && -f $artifact ]]; then
      echo "    crash input: $artifact ($(wc -c <"$artifact") bytes), hex: $(head -c 256 "$artifact" | od -An -tx1 -v | tr -d ' \n')"
      echo "    reproduce: $bin_dir/$target $artifact"
    fi
  fi
done

if ((${#failed[@]})); then
  step "crashes found in: ${failed[*]}"
  exit 1
fi
step "no crash in ${#targets[@]} targets"
