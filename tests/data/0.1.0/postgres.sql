--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: fixture_d738abbb9770; Type: SCHEMA; Schema: -; Owner: -
--



--
-- Name: chatstore_search; Type: TEXT SEARCH CONFIGURATION; Schema: fixture_d738abbb9770; Owner: -
--

CREATE TEXT SEARCH CONFIGURATION chatstore_search (
    PARSER = pg_catalog."default" );

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR asciiword WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR word WITH public.unaccent, simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR numword WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR email WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR url WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR host WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR sfloat WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR version WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR hword_numpart WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR hword_part WITH public.unaccent, simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR hword_asciipart WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR numhword WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR asciihword WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR hword WITH public.unaccent, simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR url_path WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR file WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR "float" WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR "int" WITH simple;

ALTER TEXT SEARCH CONFIGURATION chatstore_search
    ADD MAPPING FOR uint WITH simple;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: messages; Type: TABLE; Schema: fixture_d738abbb9770; Owner: -
--

CREATE TABLE messages (
    id character varying NOT NULL,
    session_id character varying NOT NULL,
    seq integer NOT NULL,
    role character varying NOT NULL,
    content text NOT NULL,
    status character varying NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    worker_id character varying,
    client_id character varying,
    finish_reason character varying,
    error text,
    stop_requested boolean DEFAULT false NOT NULL,
    search_vector tsvector GENERATED ALWAYS AS (to_tsvector('chatstore_search'::regconfig, replace(content, '<'::text, chr(57348)))) STORED,
    CONSTRAINT message_finish_reason CHECK (((finish_reason)::text = ANY ((ARRAY['completed'::character varying, 'stopped'::character varying, 'client_disconnected'::character varying, 'server_stopped'::character varying, 'error'::character varying])::text[]))),
    CONSTRAINT message_role CHECK (((role)::text = ANY ((ARRAY['system'::character varying, 'user'::character varying, 'assistant'::character varying])::text[]))),
    CONSTRAINT message_status CHECK (((status)::text = ANY ((ARRAY['in_progress'::character varying, 'complete'::character varying, 'incomplete'::character varying, 'error'::character varying])::text[])))
);


--
-- Name: sessions; Type: TABLE; Schema: fixture_d738abbb9770; Owner: -
--

CREATE TABLE sessions (
    id character varying NOT NULL,
    name character varying,
    metadata jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    last_seq integer NOT NULL,
    last_message_at timestamp with time zone,
    activity_at timestamp with time zone NOT NULL
);


--
-- Name: workers; Type: TABLE; Schema: fixture_d738abbb9770; Owner: -
--

CREATE TABLE workers (
    id character varying NOT NULL,
    hostname character varying NOT NULL,
    pid integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    lease_expires_at timestamp with time zone NOT NULL
);


--
-- Data for Name: messages; Type: TABLE DATA; Schema: fixture_d738abbb9770; Owner: -
--

INSERT INTO messages VALUES ('74c13411-675f-4d62-889f-fc064b38c612', '097c62d6-1971-4d31-ad7b-d6d64231c4ad', 1, 'user', 'Where can I find a good café near the lake?', 'complete', '2026-12-01 08:56:02.242844+00', '2026-12-01 08:56:02.242844+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('87cd04bc-e955-444b-81ec-6fe212a6cb64', '097c62d6-1971-4d31-ad7b-d6d64231c4ad', 2, 'assistant', 'Try the Café Schober, near the Grossmünster.', 'complete', '2026-12-01 08:56:02.242844+00', '2026-12-01 08:56:02.257091+00', NULL, NULL, 'completed', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('8a4197c0-0a0e-4945-a0bb-93276b9dd976', '097c62d6-1971-4d31-ad7b-d6d64231c4ad', 3, 'user', 'And a museum?', 'complete', '2026-12-01 08:56:02.269696+00', '2026-12-01 08:56:02.269696+00', NULL, 'client-msg-1', NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('a5306cbd-d5e8-4a22-a310-9485128cf1b6', '097c62d6-1971-4d31-ad7b-d6d64231c4ad', 4, 'assistant', 'The Kunsthaus; the Landesmuseum is near the station.', 'complete', '2026-12-01 08:56:02.269696+00', '2026-12-01 08:56:02.272883+00', NULL, NULL, 'completed', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('3daa9e84-3220-4843-90ee-cf8690274c1d', 'd2027154-80a9-4402-bb28-0d266913e704', 1, 'user', 'A snowflake ❄ in a renamed session', 'complete', '2026-12-01 08:56:02.292926+00', '2026-12-01 08:56:02.292926+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('54588317-7337-4698-ac3d-f3cccd289b05', 'd2027154-80a9-4402-bb28-0d266913e704', 2, 'assistant', 'The Kunsthaus; the Landesmuseum is near the station.', 'complete', '2026-12-01 08:56:02.292926+00', '2026-12-01 08:56:02.297474+00', NULL, NULL, 'completed', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('a0a73cdd-084e-47d6-b67a-fbf1264923eb', 'de88ae52-4354-4266-941d-f07f14f70aca', 1, 'system', 'Be brief.', 'complete', '2025-01-02 09:00:01+00', '2025-01-02 09:00:01+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('b97c346c-1c5a-4cd4-aa6e-e56687194586', 'de88ae52-4354-4266-941d-f07f14f70aca', 2, 'user', 'Naive question about Bayes', 'complete', '2025-01-02 09:00:02+00', '2025-01-02 09:00:02+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('cc9e30fb-86b7-4db9-a8e0-912d1984e5c8', 'de88ae52-4354-4266-941d-f07f14f70aca', 3, 'assistant', 'Naïve Bayes assumes', 'incomplete', '2025-01-02 09:00:03+00', '2025-01-02 09:00:03+00', NULL, NULL, 'server_stopped', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('e0b8ddbc-0de9-48e3-a377-ffc37c5aecc5', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 1, 'user', 'Stop this one', 'complete', '2026-12-01 08:56:02.318243+00', '2026-12-01 08:56:02.318243+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('99411712-72af-4280-8f9f-e393e15f790f', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 2, 'assistant', 'stopped half', 'incomplete', '2026-12-01 08:56:02.318243+00', '2026-12-01 08:56:02.320956+00', NULL, NULL, 'stopped', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('804f4ad2-c3ad-47dd-b2ad-12421299e37c', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 3, 'user', 'I will close the tab', 'complete', '2026-12-01 08:56:02.323427+00', '2026-12-01 08:56:02.323427+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('1ef3df33-129c-4efc-8380-d3885f3de660', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 4, 'assistant', 'partial', 'incomplete', '2026-12-01 08:56:02.323427+00', '2026-12-01 08:56:02.326597+00', NULL, NULL, 'client_disconnected', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('1123ed9a-e5bd-4e33-bb8a-b385025f4e75', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 5, 'user', 'The server restarts', 'complete', '2026-12-01 08:56:02.328269+00', '2026-12-01 08:56:02.328269+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('6b01fb0b-9064-4a7a-b84c-83eb2318247a', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 6, 'assistant', 'cut', 'incomplete', '2026-12-01 08:56:02.328269+00', '2026-12-01 08:56:02.330716+00', NULL, NULL, 'server_stopped', NULL, false, DEFAULT);
INSERT INTO messages VALUES ('af344ea3-ebde-4a2f-a021-2dc1d74b26e6', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 7, 'user', 'Fail please', 'complete', '2026-12-01 08:56:02.332405+00', '2026-12-01 08:56:02.332405+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('9d14d9cd-45f2-4844-bf5f-bc0f72e24496', '4f679ed4-13b1-4c5c-b393-6c444e2776f0', 8, 'assistant', '', 'error', '2026-12-01 08:56:02.332405+00', '2026-12-01 08:56:02.337239+00', NULL, NULL, 'error', 'the model server answered 429 Too Many Requests: slow down', false, DEFAULT);
INSERT INTO messages VALUES ('c3763d62-2e65-45f7-8d15-63d7e34dfa93', 'd68e3b6c-cfee-4ed5-9231-de6d79c86bd0', 1, 'system', 'You explain statistics.', 'complete', '2026-12-01 08:56:02.347158+00', '2026-12-01 08:56:02.347158+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('90871b24-0eef-45c4-b985-2c9487f604f0', 'd68e3b6c-cfee-4ed5-9231-de6d79c86bd0', 2, 'user', 'Explain naive Bayes', 'complete', '2026-12-01 08:56:02.347158+00', '2026-12-01 08:56:02.347158+00', NULL, 'client-msg-2', NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('43ca32a2-94d9-4b71-83ec-10a14edfdb84', 'd68e3b6c-cfee-4ed5-9231-de6d79c86bd0', 3, 'assistant', 'Naive Bayes is a classifier that', 'in_progress', '2026-12-01 08:56:02.347158+00', '2026-12-01 08:56:02.347158+00', '0a0a0a0a-0000-4000-8000-000000000001', NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('03533067-7313-4cc2-9e26-18f06a359e3f', '0c6a3416-8119-45c2-9c74-b77692c1712b', 1, 'user', 'How do I escape <script> tags in HTML?', 'complete', '2026-12-01 08:56:02.467761+00', '2026-12-01 08:56:02.467761+00', NULL, NULL, NULL, NULL, false, DEFAULT);
INSERT INTO messages VALUES ('ff9dd18a-cc1a-4995-98ff-782424acee9c', '0c6a3416-8119-45c2-9c74-b77692c1712b', 2, 'assistant', 'Use html.escape, ', 'error', '2026-12-01 08:56:02.467761+00', '2026-12-01 08:56:02.479165+00', NULL, NULL, 'error', 'the model is overloaded', false, DEFAULT);


--
-- Data for Name: sessions; Type: TABLE DATA; Schema: fixture_d738abbb9770; Owner: -
--

INSERT INTO sessions VALUES ('097c62d6-1971-4d31-ad7b-d6d64231c4ad', 'Trip to Zürich', '{"tags": ["café", "zürich"], "emoji": "🚀", "topic": "travel", "nested": {"a": {"b": [1, 2.5, {"c": null}]}, "t": true}}', '2026-12-01 08:56:02.237808+00', '2026-12-01 08:56:02.237808+00', 4, '2026-12-01 08:56:02.269696+00', '2026-12-01 08:56:02.269696+00');
INSERT INTO sessions VALUES ('aef6770e-f982-4fc0-9ec8-6b25d73c3a35', NULL, '{}', '2026-12-01 08:56:02.276885+00', '2026-12-01 08:56:02.276885+00', 0, NULL, '2026-12-01 08:56:02.276885+00');
INSERT INTO sessions VALUES ('d2027154-80a9-4402-bb28-0d266913e704', 'Renamed', '{"new": [1], "keep": 1}', '2026-12-01 08:56:02.280706+00', '2026-12-01 08:56:02.284673+00', 2, '2026-12-01 08:56:02.292926+00', '2026-12-01 08:56:02.292926+00');
INSERT INTO sessions VALUES ('de88ae52-4354-4266-941d-f07f14f70aca', 'Imported', '{"source": "export"}', '2025-01-02 09:00:00+00', '2025-01-02 09:30:00+00', 3, '2025-01-02 09:00:03+00', '2025-01-02 09:00:03+00');
INSERT INTO sessions VALUES ('4f679ed4-13b1-4c5c-b393-6c444e2776f0', 'Stopped replies', '{}', '2026-12-01 08:56:02.314699+00', '2026-12-01 08:56:02.314699+00', 8, '2026-12-01 08:56:02.332405+00', '2026-12-01 08:56:02.332405+00');
INSERT INTO sessions VALUES ('d68e3b6c-cfee-4ed5-9231-de6d79c86bd0', 'Still streaming', '{}', '2026-12-01 08:56:02.340808+00', '2026-12-01 08:56:02.340808+00', 3, '2026-12-01 08:56:02.347158+00', '2026-12-01 08:56:02.347158+00');
INSERT INTO sessions VALUES ('0c6a3416-8119-45c2-9c74-b77692c1712b', 'Code <b>', '{"lang": "python"}', '2026-12-01 08:56:02.459415+00', '2026-12-01 08:56:02.459415+00', 2, '2026-12-01 08:56:02.467761+00', '2026-12-01 08:56:02.467761+00');


--
-- Data for Name: workers; Type: TABLE DATA; Schema: fixture_d738abbb9770; Owner: -
--

INSERT INTO workers VALUES ('0a0a0a0a-0000-4000-8000-000000000001', 'chatstore-fixture-host/pidns:4026531836', 4242, '2026-11-30 12:00:00+00', '2099-12-31 23:59:00+00');


--
-- Name: messages messages_pkey; Type: CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);


--
-- Name: messages messages_session_id_client_id_key; Type: CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY messages
    ADD CONSTRAINT messages_session_id_client_id_key UNIQUE (session_id, client_id);


--
-- Name: messages messages_session_id_seq_key; Type: CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY messages
    ADD CONSTRAINT messages_session_id_seq_key UNIQUE (session_id, seq);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);


--
-- Name: workers workers_pkey; Type: CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);


--
-- Name: ix_messages_in_progress; Type: INDEX; Schema: fixture_d738abbb9770; Owner: -
--

CREATE INDEX ix_messages_in_progress ON messages USING btree (worker_id) WHERE ((status)::text = 'in_progress'::text);


--
-- Name: ix_messages_search; Type: INDEX; Schema: fixture_d738abbb9770; Owner: -
--

CREATE INDEX ix_messages_search ON messages USING gin (search_vector);


--
-- Name: ix_sessions_activity; Type: INDEX; Schema: fixture_d738abbb9770; Owner: -
--

CREATE INDEX ix_sessions_activity ON sessions USING btree (activity_at, id);


--
-- Name: ix_sessions_created; Type: INDEX; Schema: fixture_d738abbb9770; Owner: -
--

CREATE INDEX ix_sessions_created ON sessions USING btree (created_at, id);


--
-- Name: messages messages_session_id_fkey; Type: FK CONSTRAINT; Schema: fixture_d738abbb9770; Owner: -
--

ALTER TABLE ONLY messages
    ADD CONSTRAINT messages_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


