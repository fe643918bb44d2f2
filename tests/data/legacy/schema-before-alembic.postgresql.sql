-- The schema `create_all` made before migrations existed (commit 48d5a6f), for the upgrade test.
CREATE TABLE conversations (
	id SERIAL NOT NULL, 
	channel VARCHAR(32) NOT NULL, 
	user_id VARCHAR(128) NOT NULL, 
	display_name VARCHAR(200) NOT NULL, 
	lang VARCHAR(8) NOT NULL, 
	consent BOOLEAN, 
	region VARCHAR(64), 
	facts JSON NOT NULL, 
	flow VARCHAR(32), 
	flow_state JSON NOT NULL, 
	guide_progress JSON NOT NULL, 
	dislikes_in_a_row INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (channel, user_id)
);

CREATE TABLE draft_faq (
	id SERIAL NOT NULL, 
	ticket_id INTEGER NOT NULL, 
	question TEXT NOT NULL, 
	answer TEXT NOT NULL, 
	region VARCHAR(64), 
	status VARCHAR(16) NOT NULL, 
	created_by VARCHAR(200) NOT NULL, 
	approved_by VARCHAR(200) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_draft_faq_ticket_id ON draft_faq (ticket_id);

CREATE TABLE kb_pointer (
	name VARCHAR(32) NOT NULL, 
	version VARCHAR(64) NOT NULL, 
	switched_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	switched_by VARCHAR(200) NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE kb_versions (
	version VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	collection VARCHAR(128) NOT NULL, 
	embedder VARCHAR(200) NOT NULL, 
	created_by VARCHAR(200) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	documents INTEGER NOT NULL, 
	chunks INTEGER NOT NULL, 
	stats JSON NOT NULL, 
	manifest JSON NOT NULL, 
	PRIMARY KEY (version)
);

CREATE TABLE feedback (
	id SERIAL NOT NULL, 
	conversation_id INTEGER NOT NULL, 
	answer_line_id INTEGER NOT NULL, 
	question TEXT NOT NULL, 
	answer TEXT NOT NULL, 
	region VARCHAR(64), 
	vote INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
);

CREATE INDEX ix_feedback_conversation_id ON feedback (conversation_id);

CREATE TABLE tickets (
	id SERIAL NOT NULL, 
	conversation_id INTEGER NOT NULL, 
	channel VARCHAR(32) NOT NULL, 
	user_id VARCHAR(128) NOT NULL, 
	display_name VARCHAR(200) NOT NULL, 
	region VARCHAR(64), 
	reason VARCHAR(200) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	agent VARCHAR(128), 
	agent_name VARCHAR(200) NOT NULL, 
	topic_id INTEGER, 
	facts JSON NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	announced_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	resolved_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	FOREIGN KEY(conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
);

CREATE INDEX ix_tickets_state ON tickets (state);

CREATE INDEX ix_tickets_topic_id ON tickets (topic_id);

CREATE INDEX ix_tickets_conversation_id ON tickets (conversation_id);

CREATE TABLE transcript (
	id SERIAL NOT NULL, 
	conversation_id INTEGER NOT NULL, 
	direction VARCHAR(4) NOT NULL, 
	text TEXT NOT NULL, 
	meta JSON NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
);

CREATE INDEX ix_transcript_conversation_id ON transcript (conversation_id);

CREATE TABLE ticket_events (
	id SERIAL NOT NULL, 
	ticket_id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	actor VARCHAR(200) NOT NULL, 
	text TEXT NOT NULL, 
	source VARCHAR(128), 
	delivered BOOLEAN NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (ticket_id, kind, source), 
	FOREIGN KEY(ticket_id) REFERENCES tickets (id) ON DELETE CASCADE
);

CREATE INDEX ix_ticket_events_ticket_id ON ticket_events (ticket_id);
