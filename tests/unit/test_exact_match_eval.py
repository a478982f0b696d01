from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.eval.exact_match import exact_match_accuracy
from posttrain.models.chat.spec import load_chat


def test_accuracy_counts_what_the_exact_match_reward_counts():
    _, test = make_splits(ArithmeticTask(n_test=20))
    accuracy, records = exact_match_accuracy(load_chat("scripted:arithmetic"), test)
    assert accuracy == 1.0 and all(r["model"] == "scripted:arithmetic" for r in records)
    accuracy, records = exact_match_accuracy(load_chat("scripted:echo"), test)
    assert accuracy == 0.0
    assert records[0]["response"] == records[0]["prompt"] and not records[0]["correct"]
