"""The annotation studio: a page where people label videos into the seed preference set.

`store.Store` keeps tasks, labels and critic verdicts durably; `tasks` builds queues (and review tasks);
`submission` checks an annotation; `aggregate` votes, measures agreement and writes the seed set;
`app` is the HTTP app and page, `serve` its Ray Serve deployment; `sim_client` labels through the
HTTP API with the embedded world's simulated annotators; `critic_scoring` and `disagreements` make
the critic-vs-human view; `reason_rules`, `correction` and `half_critic` are LiFT's data correction.
"""
