-- The relayer's tables as `Base.metadata.create_all` made them on sqlite before migrations existed.

CREATE TABLE jobs (
	job_id VARCHAR(66) NOT NULL,
	payer VARCHAR(42) NOT NULL,
	model_id INTEGER NOT NULL,
	max_credits BIGINT NOT NULL,
	tokens_burned VARCHAR(80) NOT NULL,
	deadline BIGINT NOT NULL,
	spec_hash VARCHAR(66) NOT NULL,
	block_number BIGINT NOT NULL,
	block_hash VARCHAR(66) NOT NULL,
	tx_hash VARCHAR(66) NOT NULL,
	state VARCHAR(16) NOT NULL,
	operator VARCHAR(42),
	tries INTEGER NOT NULL,
	lease_owner VARCHAR(128),
	lease_until FLOAT NOT NULL,
	input_tokens INTEGER,
	output_tokens INTEGER,
	answer TEXT,
	result_hash VARCHAR(66),
	reason TEXT,
	settlement_id BIGINT,
	settle_tx VARCHAR(66),
	closed_block BIGINT,
	charge BIGINT,
	refund BIGINT,
	opened_at FLOAT NOT NULL,
	completed_at FLOAT,
	updated_at FLOAT NOT NULL,
	PRIMARY KEY (job_id)
);

CREATE INDEX ix_jobs_state_lease ON jobs (state, lease_until);

CREATE INDEX ix_jobs_payer ON jobs (payer);

CREATE TABLE reveals (
	job_id VARCHAR(66) NOT NULL,
	payer VARCHAR(42) NOT NULL,
	spec_hash VARCHAR(66) NOT NULL,
	model VARCHAR(128) NOT NULL,
	request TEXT NOT NULL,
	signature VARCHAR(132) NOT NULL,
	received_at FLOAT NOT NULL,
	PRIMARY KEY (job_id)
);

CREATE TABLE transitions (
	id INTEGER NOT NULL,
	job_id VARCHAR(66) NOT NULL,
	state VARCHAR(16) NOT NULL,
	at FLOAT NOT NULL,
	"by" VARCHAR(128) NOT NULL,
	detail TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_transitions_job_id ON transitions (job_id);

CREATE TABLE checkpoints (
	name VARCHAR(32) NOT NULL,
	block_number BIGINT NOT NULL,
	block_hash VARCHAR(66) NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE block_hashes (
	block_number BIGINT NOT NULL,
	block_hash VARCHAR(66) NOT NULL,
	PRIMARY KEY (block_number)
);

CREATE TABLE operators (
	address VARCHAR(42) NOT NULL,
	endpoint TEXT NOT NULL,
	models TEXT NOT NULL,
	active BOOLEAN NOT NULL,
	jailed BOOLEAN NOT NULL,
	block_number BIGINT NOT NULL,
	dispatched INTEGER NOT NULL,
	succeeded INTEGER NOT NULL,
	failed INTEGER NOT NULL,
	latency_ewma_ms FLOAT NOT NULL,
	last_error TEXT,
	unreachable INTEGER DEFAULT '0' NOT NULL,
	answered_errors INTEGER DEFAULT '0' NOT NULL,
	PRIMARY KEY (address)
);

CREATE TABLE models (
	model_id INTEGER NOT NULL,
	name VARCHAR(128) NOT NULL,
	input_price BIGINT NOT NULL,
	output_price BIGINT NOT NULL,
	listed BOOLEAN NOT NULL,
	block_number BIGINT NOT NULL,
	PRIMARY KEY (model_id)
);

CREATE TABLE attempts (
	id INTEGER NOT NULL,
	job_id VARCHAR(66) NOT NULL,
	operator VARCHAR(42) NOT NULL,
	started_at FLOAT NOT NULL,
	latency_ms FLOAT,
	outcome VARCHAR(16) NOT NULL,
	detail TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_attempts_job_id ON attempts (job_id);

CREATE INDEX ix_attempts_operator ON attempts (operator);

CREATE TABLE settlements (
	id INTEGER NOT NULL,
	nonce BIGINT NOT NULL,
	tx_hashes TEXT NOT NULL,
	gas_price BIGINT NOT NULL,
	jobs INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	sent_at FLOAT NOT NULL,
	mined_block BIGINT,
	gas_used BIGINT,
	PRIMARY KEY (id)
);

CREATE TABLE leases (
	name VARCHAR(32) NOT NULL,
	owner VARCHAR(128) NOT NULL,
	until FLOAT NOT NULL,
	PRIMARY KEY (name)
);
