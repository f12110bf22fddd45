#!/usr/bin/env python3
"""Check an mlruns/ folder the way MLflow's FileStore reader would.

Usage: check-mlruns.py MLRUNS_DIR

Needs only Debian's python3 and python3-yaml. It applies the reader rules of
docs/tracking-format.md (from MLflow's documented FileStore format): YAML
types, ids matching folders, required run sub-folders, metric line shapes,
key names. Exit status 0 when every experiment and run would load, 1 with one
line per problem otherwise.
"""
import os
import posixpath
import re
import sys

import yaml

KEY_RE = re.compile(r"^[/\w.\- :]*$")
RESERVED_ROOT = {".trash", "models"}
RESERVED_EXPERIMENT = {"tags", "datasets", "traces", "models"}


class Checker:
    def __init__(self):
        self.problems = []
        self.experiments = 0
        self.runs = 0

    def problem(self, path, text):
        self.problems.append(f"{path}: {text}")

    def load_yaml(self, path):
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            self.problem(path, f"cannot load: {error}")
            return None
        if not isinstance(data, dict):
            self.problem(path, "top level is not a mapping")
            return None
        return data

    def check_key(self, path, key):
        bad = (not KEY_RE.match(key) or posixpath.normpath(key) != key
               or key == "." or key.startswith("..") or key.startswith("/"))
        if bad:
            self.problem(path, f"invalid key name {key!r}")

    def values(self, folder):
        """Yield (key, path) for every file below folder, keys '/'-joined."""
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, folder).replace(os.sep, "/"), path

    def check_value_files(self, folder):
        for key, path in self.values(folder):
            self.check_key(path, key)
            try:
                with open(path, encoding="utf-8") as handle:
                    handle.read()
            except (OSError, UnicodeDecodeError) as error:
                self.problem(path, f"unreadable value: {error}")

    def check_metric_file(self, path):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.strip().split(" ")
                if len(parts) not in (2, 3, 5):
                    self.problem(path, f"line {number}: {len(parts)} fields")
                    continue
                try:
                    int(parts[0])
                    float(parts[1])
                    if len(parts) > 2:
                        int(parts[2])
                except ValueError as error:
                    self.problem(path, f"line {number}: {error}")

    def check_run(self, exp_id, run_dir):
        meta_path = os.path.join(run_dir, "meta.yaml")
        meta = self.load_yaml(meta_path)
        if meta is None:
            return
        self.runs += 1
        run_id = os.path.basename(run_dir)
        if meta.get("run_id") != run_id:
            self.problem(meta_path, "run_id missing or not the folder name")
        if "run_uuid" in meta and meta["run_uuid"] != run_id:
            self.problem(meta_path, "run_uuid differs from run_id")
        if str(meta.get("experiment_id")) != exp_id:
            self.problem(meta_path, "experiment_id is not the parent folder")
        status = meta.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 1 <= status <= 5:
            self.problem(meta_path, f"status {status!r} is not an int 1..5")
        if not isinstance(meta.get("start_time"), int):
            self.problem(meta_path, "start_time is not an int")
        if "end_time" not in meta or not isinstance(meta["end_time"], (int, type(None))):
            self.problem(meta_path, "end_time missing or not int/null")
        if meta.get("user_id") is None:
            self.problem(meta_path, "user_id is null")
        if meta.get("lifecycle_stage", "active") not in ("active", "deleted"):
            self.problem(meta_path, "bad lifecycle_stage")
        for key in ("run_name", "artifact_uri", "user_id"):
            if key in meta and not isinstance(meta[key], str):
                self.problem(meta_path, f"{key} is not a string")
        for sub in ("metrics", "params", "artifacts"):
            if not os.path.isdir(os.path.join(run_dir, sub)):
                self.problem(run_dir, f"no {sub}/ folder: MLflow reports 'Run not found'")
        metrics = os.path.join(run_dir, "metrics")
        for key, path in self.values(metrics):
            self.check_key(path, key)
            self.check_metric_file(path)
        for sub in ("params", "tags"):
            self.check_value_files(os.path.join(run_dir, sub))

    def check_experiment(self, exp_dir):
        meta_path = os.path.join(exp_dir, "meta.yaml")
        if not os.path.isfile(meta_path):
            return
        meta = self.load_yaml(meta_path)
        if meta is None:
            return
        self.experiments += 1
        exp_id = os.path.basename(exp_dir)
        for key in ("experiment_id", "name", "artifact_location", "lifecycle_stage"):
            if key not in meta:
                self.problem(meta_path, f"required field {key} missing")
        if str(meta.get("experiment_id")) != exp_id:
            self.problem(meta_path, "experiment_id is not the folder name")
        if not isinstance(meta.get("name"), str):
            self.problem(meta_path, f"name {meta.get('name')!r} is not a string")
        self.check_value_files(os.path.join(exp_dir, "tags"))
        for name in sorted(os.listdir(exp_dir)):
            path = os.path.join(exp_dir, name)
            if name in RESERVED_EXPERIMENT or name.startswith(".") or not os.path.isdir(path):
                continue
            self.check_run(exp_id, path)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = argv[1]
    checker = Checker()
    for parent in (root, os.path.join(root, ".trash")):
        if not os.path.isdir(parent):
            continue
        for name in sorted(os.listdir(parent)):
            path = os.path.join(parent, name)
            if name not in RESERVED_ROOT and os.path.isdir(path):
                checker.check_experiment(path)
    for line in checker.problems:
        print(line)
    print(f"check-mlruns: {checker.experiments} experiments, {checker.runs} runs, "
          f"{len(checker.problems)} problems")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
