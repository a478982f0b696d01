"""SustainScore (THU-KEG, 2026): does following a self-evident constraint cost task accuracy?

Take the instances a model solves; derive from its own successful output constraints that
output already satisfies (`constraints.extract_constraints`); insert them into the instruction
and ask again. SustainScore is the accuracy on those originally solved instances with the
constraints in place (`metrics.summarise`). Domains: generated arithmetic word problems,
multi-hop QA over the LongTraceRL synthetic world, and HumanEval code run in the bubblewrap
sandbox (`posttrain.sandbox`; results say when the subprocess fallback ran instead).
`attention.constraint_attention_share` measures, for local models, how much attention the
answer puts on the inserted constraint.
"""
