"""The offline engine reads a commitment in its conversation, and the memory follows it.

Each test is a short conversation of its own (not the speech scripts, not bench/coaching/):
a plan taken back, a hedge, small talk, a pronoun, a parked topic, a sentence cut across
two segments, and later sessions that report an item done, not yet done, or dropped.
"""

from __future__ import annotations

import datetime as dt

from workers.summaries.memory import ClientMemory, briefing_items, update_memory
from workers.summaries.offline import summarise_offline
from workers.transcription import Segment

COACH, CLIENT = "Noor", "Tobias"


def talk(*turns: str, start: float = 0.0) -> list[Segment]:
    """Alternating turns, coach first, ten seconds each."""
    return [Segment(start + 10.0 * i, start + 10.0 * i + 8, text, COACH if i % 2 == 0 else CLIENT)
            for i, text in enumerate(turns)]


def summary(segments, memory=None, session_id="s1"):
    return summarise_offline(segments, memory=memory, coach_labels=(COACH, "Coach"),
                             session_id=session_id, people=(CLIENT, COACH))


def said(client) -> list[str]:
    return [c.what for c in client.commitments]


def test_a_commitment_taken_back_later_in_the_session_is_not_shown():
    segments = talk(
        "What would you like to focus on today?",
        "The job search, mostly. It has stalled since the spring.",
        "What is one thing you will do this week?",
        "I'll ring the recruiter from Halden tomorrow morning.",
        "What else is on your list?",
        "I'm going to rewrite my portfolio page by Sunday.",
        "How does that feel?",
        "Actually, no, I won't ring the recruiter after all. She only has sales roles.",
    )
    client, _ = summary(segments)
    assert not any("recruiter" in what for what in said(client))
    assert any("portfolio page" in what for what in said(client))


def test_scratch_that_takes_back_the_plan_just_said():
    segments = talk(
        "Where shall we start today?",
        "With the move to Leeds. I'll tell my landlord on Monday that I'm leaving.",
        "Okay.",
        "Scratch that, I need to talk to my partner first.",
    )
    client, _ = summary(segments)
    assert not any("landlord" in what for what in said(client))


def test_a_hedged_commitment_is_kept_and_marked_tentative():
    segments = talk(
        "What would you like to work on?",
        "Delegation. I keep doing everything myself.",
        "What could you hand over?",
        "I might ask Ingrid to run the Thursday stand-up. And I will send the rota to the team by Friday.",
    )
    client, _ = summary(segments)
    by_what = {c.what: c for c in client.commitments}
    standup = next(c for what, c in by_what.items() if "stand-up" in what)
    rota = next(c for what, c in by_what.items() if "rota" in what)
    assert standup.tentative and not rota.tentative


def test_small_talk_plans_are_not_commitments():
    segments = talk(
        "Hi Tobias, how was the long weekend?",
        "Lovely, thanks. We're going to my cousin's wedding on Saturday, and I'll finally watch the last "
        "episode of that series tonight.",
        "Sounds fun. So, what would you like to focus on today?",
        "My manager's feedback. It stung more than I expected.",
        "What will you do with it?",
        "I'll book an hour with her next week to go through the feedback.",
    )
    client, _ = summary(segments)
    assert not any("wedding" in what or "episode" in what for what in said(client))
    assert any("feedback" in what for what in said(client))


def test_a_leisure_plan_that_answers_the_coachs_question_is_work():
    # Wellbeing coaching: a walk is the work when it answers "what will you do".
    segments = talk(
        "What would you like to look at today?",
        "Sleep. I'm wired every night.",
        "What will you try this week?",
        "I'll go for a walk after dinner every evening instead of checking email.",
    )
    client, _ = summary(segments)
    assert any("walk" in what for what in said(client))


def test_a_pronoun_is_spelled_out_from_the_turn_before():
    segments = talk(
        "What would you like to talk about?",
        "Whether to go for the promotion.",
        "Have you looked at the team lead opening Kasia mentioned?",
        "Yes. I'll apply for it by Friday.",
    )
    client, _ = summary(segments)
    apply = next(c for c in client.commitments if c.what.startswith("apply for"))
    assert "team lead opening" in apply.what and apply.by_when == "by Friday"


def test_an_open_thread_names_its_topic():
    segments = talk(
        "What's on your mind today?",
        "Honestly, my sister. Since Dad's funeral we barely speak and it sits with me all week.",
        "That sounds heavy. We're nearly at time, so shall we come back to that next session?",
        "Yes please.",
    )
    client, _ = summary(segments)
    assert any("sister" in thread for thread in client.open_threads), client.open_threads

    named = talk("We never really got to the money side of going freelance.", "True, next time.")
    client, _ = summary(named)
    assert any("money side" in thread for thread in client.open_threads), client.open_threads


def test_a_commitment_split_across_two_segments_keeps_its_citation():
    segments = [
        Segment(0.0, 4.0, "What's your next step?", COACH),
        Segment(5.0, 7.0, "I'll send the", CLIENT),
        Segment(7.0, 10.0, "budget proposal to Marguerite by Wednesday.", CLIENT),
    ]
    client, _ = summary(segments)
    assert [c.what for c in client.commitments] == ["send the budget proposal to Marguerite by Wednesday"]
    assert client.commitments[0].source_timestamp == 5.0


def test_the_overview_is_a_sentence_to_the_client():
    segments = talk(
        "What would you like to focus on today?",
        "I want to talk about my return to work after the parental leave.",
        "What will you do first?",
        "I'll ask my manager for a phased start by the end of the month.",
    )
    client, _ = summary(segments)
    assert client.overview.startswith("You talked about your return to work after the parental leave.")
    assert "You'll ask your manager for a phased start" in client.overview


def test_a_plan_taken_back_two_turns_later_by_pointing_at_it_is_not_shown():
    segments = talk(
        "What would help with the evenings?",
        "I'll sell the television. Just get it out of the house.",
        "How would the rest of the family take that?",
        "Well, my son watches the football on it. Every weekend.",
        "So there would be a cost.",
        "Yes. Actually, scratch that, that's not fair on him. I'll move it out of the bedroom tonight instead.",
    )
    client, _ = summary(segments)
    assert not any("sell" in what for what in said(client))
    assert any("out of the bedroom" in what for what in said(client))


def test_a_retraction_naming_what_the_coach_asked_about_takes_the_plan_back():
    # The plan names the person ("Ines"), the retraction her role ("the headhunter"): the
    # coach's question joins the two.
    segments = talk(
        "What would you like to focus on?",
        "Whether to stay at the agency.",
        "And the headhunter, Ines? What about her?",
        "I'll ring Ines on Thursday and ask what the salary is.",
        "What do you hope to learn?",
        "Hm. You know, I don't think I'll ring the headhunter after all. I want to give this place a real go.",
    )
    client, _ = summary(segments)
    assert not any("Ines" in what or "headhunter" in what for what in said(client))


def test_what_the_coach_promises_is_written_with_the_clients_name_and_said_once():
    segments = talk(
        "There's a short book on negotiating I like. I'll send you that book after the session.",
        "Thank you.",
        "So, to recap: you'll speak to the board. And I'll send you the book.",
    )
    client, _ = summarise_offline(segments, coach_labels=(COACH, "Coach"), people=(CLIENT, COACH),
                                  client_name=CLIENT)
    coach_owned = [c for c in client.commitments if c.who == COACH]
    assert [c.what for c in coach_owned] == ["send Tobias that book after the session"]


def test_a_pronoun_takes_the_thing_introduced_not_a_question_about_it():
    segments = talk(
        "What's on your mind?",
        "There's a research fellowship that just opened at the university. It's a long shot.",
        "What's the deadline on that?",
        "The end of May. You know what, I'll apply for it by the end of May.",
    )
    client, _ = summary(segments)
    assert said(client) == ["apply for the research fellowship by the end of May"]


def test_homework_asked_as_a_question_and_one_more_straight_after_are_both_kept():
    segments = talk(
        "So, between now and next time, could you keep a list of the tasks you took on without being asked?",
        "Okay.",
        "Your experiment for the fortnight is one evening a week with no work email.",
        "Fine.",
        "And one more, if you're up for it. Alongside that, could you note how you slept each morning?",
    )
    client, _ = summary(segments)
    tasks = [h.task for h in client.homework]
    assert len(tasks) == 3
    assert tasks[0].startswith("keep a list of the tasks") and not tasks[0].endswith("?")
    assert tasks[1] == "one evening a week with no work email"
    assert tasks[2].startswith("note how you slept")


def test_a_decision_said_in_the_next_sentence_or_agreed_to_is_read_whole():
    segments = talk(
        "Where are you with the two offers?",
        "I think I've decided, actually. I'm taking the one in Bristol, not the London one.",
        "So, shall we agree on this: if the contract isn't signed by June, you'll call the London recruiter?",
        "Yes. Agreed.",
    )
    client, _ = summary(segments)
    decisions = [d.text for d in client.decisions]
    assert decisions[0].startswith("I'm taking the one in Bristol")
    assert any("call the London recruiter" in d for d in decisions)


def test_a_parked_topic_keeps_what_explains_it_and_a_remembered_one_is_not_parked_again():
    segments = talk(
        "You raised the move abroad last time and I asked you to hold that thought. Is it still there?",
        "It is, yes.",
        "We didn't get to the pension side, by the way. What you'd lose, and what you'd gain.",
        "Okay.",
        "And let's make your father's care the first thing we talk about next session.",
    )
    client, _ = summary(segments)
    assert client.open_threads == ["The pension side: what you'd lose, and what you'd gain",
                                   "Your father's care"]


def test_other_ways_of_promising_setting_homework_and_parking_a_topic():
    segments = talk(
        "Lovely to see you. How was the ski trip?",
        "Great. We're going to Morzine again next year, same chalet.",
        "Shall we talk about work for a bit? Where are you with the restructure?",
        "My plan is to have one-to-ones with all four team leads before the tenth.",
        "And the draft for Priya?",
        "I can have that to her by Thursday. Let me book the big room for the all-hands today.",
        "Here's something to play with before we meet: notice each time you take on a task someone else could do.",
        "Okay. And I'll email the department on Friday. Actually, let me take that back, it would leak.",
        "Good call. And the question of your own next role?",
        "Can we table that? I'd like to spend proper time on my next role next session.",
    )
    client, _ = summary(segments)
    found = said(client)
    assert any(w.startswith("have one-to-ones with all four team leads") for w in found)
    assert any(w.startswith("have the draft for Priya to her by Thursday") for w in found)
    assert any(w.startswith("book the big room") for w in found)
    assert not any("Morzine" in w or "email the department" in w or "take" in w for w in found)
    assert [h.task for h in client.homework] == ["notice each time you take on a task someone else could do"]
    assert client.open_threads == ["My next role"]


def test_a_fragment_after_a_commitment_belongs_to_it():
    segments = talk(
        "What will you do about Dev?",
        "I'll tell him myself. Next week, face to face.",
    )
    client, _ = summary(segments)
    assert said(client) == ["tell him myself, next week, face to face"]


def test_a_retraction_that_points_and_names_takes_back_the_one_it_names():
    segments = talk(
        "How will you prepare the team?",
        "I'll email the whole team a heads-up on Friday. And I'll ask Elaine to co-present the plan with me.",
        "Where does the Friday email fit, if Elaine presents?",
        "Hmm. Actually, let me take that back, the email on Friday. It would leak before the meeting.",
        "And the feedback from your manager?",
        "I'll ask Graham for feedback on the report this week.",
        "How does Graham usually give feedback?",
        "Um, he is away until May. No, wait, this is not a good idea now. I leave the feedback from Graham for now.",
    )
    client, _ = summary(segments)
    assert said(client) == ["ask Elaine to co-present the plan with me"]


def test_the_overview_names_no_list_of_frequent_words():
    segments = talk(
        "So, actually, how has the month been?",
        "Actually lovely. The tracking migration is moving, actually. The tracking migration kickoff is booked.",
        "And actually the month ahead?",
        "I'll send the tracking migration plan to Ines by Monday, actually.",
    )
    client, _ = summary(segments)
    assert client.overview.startswith("You talked about tracking migration.")
    assert "actually" not in client.overview.split(".")[0].lower()


def test_homework_announced_in_one_sentence_and_said_in_the_next_is_one_item():
    segments = talk(
        "Here's something to play with before we meet. Notice each time you say yes without thinking.",
        "Okay.",
        "And something for between sessions. Between sessions, write one line a day about what you said no to.",
    )
    client, _ = summary(segments)
    assert [h.task for h in client.homework] == ["Notice each time you say yes without thinking",
                                                 "write one line a day about what you said no to"]


# --- memory across sessions --------------------------------------------------------------------

FIRST = talk(
    "What would you like to focus on today?",
    "The workload. I'm drowning.",
    "What will you do about it?",
    "I'll have the conversation with my manager about the workload on Monday.",
    "What else?",
    "I'm going to sign up for the evening pottery class, just for me.",
    "And one more?",
    "I'll block Friday afternoons for planning.",
    "Good. For homework, write down each evening one thing you said no to.",
)
SECOND = talk(
    "Last time you were going to talk to your manager. How did it go?",
    "Yes, I had that conversation on Monday, and she moved two projects off my plate.",
    "And the pottery class?",
    "I've decided not to do the pottery class, the timing is wrong.",
    "And Friday afternoons?",
    "I didn't get round to blocking them. Still on my list.",
    # Answering what the coach just said, not a question; partly done is still open.
    "Let's look at the homework, the things you said no to each evening.",
    "I wrote down three evenings. I still want to do one more week of it.",
    start=0.0,
)


def test_later_reports_close_keep_or_drop_earlier_items_with_their_evidence():
    first, _ = summary(FIRST)
    memory = update_memory(None, first, "s1", dt.date(2026, 5, 4), FIRST)
    second, _ = summary(SECOND, memory=memory, session_id="s2")
    memory = update_memory(memory, second, "s2", dt.date(2026, 5, 18), SECOND)
    by = {c.what: c for c in memory.commitments}
    talk_item = next(c for w, c in by.items() if "manager" in w)
    pottery = next(c for w, c in by.items() if "pottery" in w)
    friday = next(c for w, c in by.items() if "Friday afternoons" in w)
    assert talk_item.status == "done" and "I had that conversation" in talk_item.closed_by.text
    assert talk_item.closed_by.session_id == "s2" and talk_item.closed_by.timestamp == 10.0
    assert pottery.status == "dropped" and pottery.closed_by.timestamp == 30.0
    assert friday.status == "open" and "didn't get round" in friday.last_update.text
    homework = next(c for c in memory.commitments if c.kind == "homework")
    assert homework.status == "open" and "one more" in homework.last_update.text

    # The briefing lists only what is open: the Friday blocks and the homework.
    listed = [c.what for c in briefing_items(memory)]
    assert len(listed) == 2
    assert any("Friday afternoons" in w for w in listed) and any("said no to" in w for w in listed)


def test_themes_are_merged_across_sessions():
    tier, _ = summary(talk("What shall we look at?", "The promotion. The promotion panel is in May."))
    memory = update_memory(ClientMemory(), tier.model_copy(update={"themes": ["promotion panel"]}), "s1",
                           None, [])
    memory = update_memory(memory, tier.model_copy(update={"themes": ["promotion"]}), "s2", None, [])
    assert [(t.name, t.session_ids) for t in memory.themes] == [("promotion panel", ["s1", "s2"])]
