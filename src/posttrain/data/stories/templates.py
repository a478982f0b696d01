"""The sentence templates of good stories, by kind, and the cliché and contradiction lines.

`writing.render` fills a template's fields from a premise; every kind belongs to one of the
story's PARTS (`PART_OF`).
"""

from __future__ import annotations

PARTS = ("beginning", "conflict", "resolution")

# Templates per kind. Core kinds appear once in every good story; optional kinds fill it to
# its target length. Fields: c, comp, a_trait, trait, role, a_role, goal, obstacle, obs,
# setting, detail.
TEMPLATES: dict[str, list[str]] = {
    "opening": [
        "{c} was {a_trait} {role} who lived in {setting}.",
        "In {setting}, everyone knew {c}, the {trait} {role}.",
        "Nobody in {setting} was quite as {trait} as {c}, {a_role} by trade.",
        "{c} had worked as {a_role} in {setting} for years and was known for being {trait}.",
        "Each morning in {setting}, {c} the {role} walked past {detail}, {trait} as ever.",
    ],
    "goal": [
        "More than anything, {c} wanted to {goal}.",
        "For as long as anyone could remember, {c} had dreamed of a chance to {goal}.",
        "{c} had made a promise to {goal}, and meant to keep it.",
        "This was the season {c} had decided to {goal}, whatever it cost.",
        "{c} told {comp} one evening that it was finally time to {goal}.",
    ],
    "begin": [
        "{c} often stopped beside {detail} to think about the future.",
        "Life there moved slowly, measured by {detail} and the turning of the seasons.",
        "{comp}, an old friend from the next street, lived close by and visited most evenings.",
        "{c} and {comp} had known each other since childhood and still argued like children.",
        "On quiet days {c} would sit near {detail} and sketch plans in a worn notebook.",
        "Visitors to the place always remembered {detail}, and so did {c}.",
        "Everyone agreed that {c} was {a_trait} soul, for better or for worse.",
    ],
    "obstacle": [
        "But then {obstacle}.",
        "Trouble came without warning: {obstacle}.",
        "Then, just as the work began, {obstacle}.",
        "It did not go to plan, because {obstacle}.",
        "The first week had barely passed when {obstacle}.",
    ],
    "conflict": [
        "For days {c} tried everything, and nothing seemed to get past {obs}.",
        "{c} felt the whole plan slipping away, and {comp} could only watch helplessly.",
        "Every attempt ended the same way, with {obs} standing squarely in the way.",
        "{comp} suggested waiting for spring, but {c} flatly refused to give up.",
        "Once {c} came close, only to be turned back somewhere near {detail}.",
        "Some neighbours laughed at the whole idea, and a few offered quiet help.",
        "Even {comp} began to doubt that anyone could get past {obs} and {goal}.",
        "Some nights {c} lay awake, wondering whether it was still possible to {goal}.",
    ],
    "overcome": [
        "In the end, {c} found a way around {obs}, with a little help from {comp}.",
        "It was {comp} who spotted the answer, and together they got past {obs}.",
        "Slowly, with patience and a borrowed idea, {c} got the better of {obs}.",
        "One bright morning {c} understood how to beat {obs}, and laughed out loud.",
        "{c} stopped fighting {obs} head-on and found a quieter road around it.",
    ],
    "achieve": [
        "And so {c} managed to {goal}, just as promised.",
        "That was how {c} came to {goal}, against every expectation.",
        "Before the month was out, {c} was able to {goal} at last.",
        "{c} did finally {goal}, and {comp} was there to see it.",
        "When the day came, {c} stood in front of everyone and got to {goal}.",
    ],
    "ending": [
        "That night {c} walked home past {detail}, tired, proud and very happy.",
        "{comp} laughed and said it had been worth every single hard day.",
        "People there still tell the story, usually with a few new twists added.",
        "{c} was still {trait}, but a good deal wiser than before.",
        "Later, {c} and {comp} sat beside {detail} and talked until the stars came out.",
        "Nobody who had doubted the plan to {goal} ever said so again.",
    ],
}
OPEN_ENDINGS = TEMPLATES["conflict"][-2:]  # restate the goal without reaching it
COMPANION_OVERCOME = TEMPLATES["overcome"][1]  # the companion finds the answer
PART_OF = {  # kind -> index into PARTS
    "opening": 0, "goal": 0, "begin": 0, "obstacle": 1, "conflict": 1,
    "overcome": 2, "achieve": 2, "ending": 2,
}  # fmt: skip
OPTIONAL = ("begin", "conflict", "ending")

# Stock phrases that replace specific details (creativity): an opening, a resolution, and
# lines that can go in the conflict or resolution part.
CLICHE_OPENING = "Once upon a time, in a land far, far away, there lived {a_role} named {c}."
CLICHE_OVERCOME = [
    "Against all odds, {c} saved the day, just like a true hero would.",
    "In the nick of time, {c} found the strength that had been hidden inside.",
    "Somehow, as if by magic, every single problem simply melted away into thin air.",
]
CLICHES: dict[int, list[str]] = {
    1: [
        "It was a dark and stormy night, and the wind howled like a wolf.",
        "Little did {c} know that everything was about to change forever.",
        "{c}'s heart was pounding like a drum, and time seemed to stand still.",
        "It was the calm before the storm, and it was now or never.",
    ],
    2: [
        "{c} knew, deep down, that everything in life happens for a reason, good or bad.",
        "In the end, {c} learned that the real treasure had been friendship.",
        "And they all lived happily ever after, as everyone always does.",
        "It was a day that nobody would ever forget, and only time would tell.",
    ],
}
CLICHE_MARKERS = (
    "once upon a time", "saved the day", "nick of time", "as if by magic", "stormy night",
    "little did", "pounding like a drum", "stand still", "calm before the storm",
    "now or never", "happens for a reason", "real treasure", "happily ever after",
    "only time would tell",
)  # fmt: skip

# Continuations that contradict earlier facts or the premise (coherence).
ELSEWHERE = "Back home in {other}, where {c} had lived all along, {c} managed to {goal}."
DEAD = "{comp}, the oldest friend {c} ever had, had died two winters before."
GONE = "Within the hour {obs} was gone for good."
STILL = "Yet {obs} still blocked every way forward."
DEAD_MARKER = "had died two winters before"
GONE_MARKER = "was gone for good"
STILL_MARKER = "still blocked every way forward"
CONTRA_TEMPLATES = (ELSEWHERE, DEAD, GONE, STILL)
