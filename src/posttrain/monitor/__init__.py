"""The monitor stage: analysing training logs after (or while) a run writes them.

`hacking` turns rollout logs into the CHERRL reward-hacking signals (reward gap G, shortcut
share M) and locates the operational onset of hacking; the detectors find that onset from
what a deployed monitor could see (prompt, response, training score), never the hidden true
score:

- `detector`: pick a detector by spec (`load_detector`), run it (`detect`), score its alert
  against the reference onset (`evaluate_detector`);
- `alert`: what a detector answers (`Alert`) and the `Detector` protocol;
- `response_features`: the features tracked (word n-grams, final-sentence n-grams, padding
  length, three-item lists) and the hacking type each suggests;
- `log_analysis`: per-step feature statistics of a rollout log (`LogAnalysis`) and the
  thresholds of the drift test (`DetectorConfig`);
- `statistical_detector`: the online drift-and-payoff test (`StatisticalDetector`);
- `agent_detector`: a chat model reading the same statistics through tools
  (`LLMAgentDetector`).
- `trainer_logs`: any trainer's rollout log (JSONL or parquet) read through a field mapping
  (`read_trainer_log`, `parse_fields`);
- `live`: the detector while a run trains: inside the RL trainer (`HackingMonitor`, the
  `monitor.hacking` setting) or following a log being written (`watch`).
"""
