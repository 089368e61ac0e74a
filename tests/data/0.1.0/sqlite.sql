PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE sessions (
	id VARCHAR NOT NULL, 
	name VARCHAR, 
	metadata JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	last_seq INTEGER NOT NULL, 
	last_message_at DATETIME, 
	activity_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(1,'26cea298-adaf-45b1-9b51-b8fbd0780bb9','Trip to Zürich','{"topic": "travel", "tags": ["caf\u00e9", "z\u00fcrich"], "nested": {"a": {"b": [1, 2.5, {"c": null}]}, "t": true}, "emoji": "\ud83d\ude80"}','2026-12-01 08:56:01.490178','2026-12-01 08:56:01.490178',4,'2026-12-01 08:56:01.513112','2026-12-01 08:56:01.513112');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(2,'31eacfe8-0f08-4e33-9c7c-fde3630ff323',NULL,'{}','2026-12-01 08:56:01.518252','2026-12-01 08:56:01.518252',0,NULL,'2026-12-01 08:56:01.518252');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(3,'b7ef5f2b-80c7-4ee4-b96f-54b84c24c222','Renamed','{"keep": 1, "new": [1]}','2026-12-01 08:56:01.520824','2026-12-01 08:56:01.523578',2,'2026-12-01 08:56:01.528465','2026-12-01 08:56:01.528465');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(4,'b7913bc3-6d70-4fca-a447-245de46de8ec','Imported','{"source": "export"}','2025-01-02 09:00:00.000000','2025-01-02 09:30:00.000000',3,'2025-01-02 09:00:03.000000','2025-01-02 09:00:03.000000');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(5,'d0eb87bf-4316-4fc2-a149-075ee1ee9cc3','Stopped replies','{}','2026-12-01 08:56:01.539653','2026-12-01 08:56:01.539653',8,'2026-12-01 08:56:01.548208','2026-12-01 08:56:01.548208');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(6,'9769b7ff-f96c-41c1-b27c-87d0a1a2690d','Still streaming','{}','2026-12-01 08:56:01.552156','2026-12-01 08:56:01.552156',3,'2026-12-01 08:56:01.554850','2026-12-01 08:56:01.554850');
INSERT INTO sessions(rowid,id,name,metadata,created_at,updated_at,last_seq,last_message_at,activity_at) VALUES(7,'eada539c-0338-457c-ba16-68669a04189a','Code <b>','{"lang": "python"}','2026-12-01 08:56:01.706592','2026-12-01 08:56:01.706592',2,'2026-12-01 08:56:01.715224','2026-12-01 08:56:01.715224');
CREATE TABLE workers (
	id VARCHAR NOT NULL, 
	hostname VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	lease_expires_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO workers(rowid,id,hostname,pid,started_at,lease_expires_at) VALUES(2,'0a0a0a0a-0000-4000-8000-000000000001','chatstore-fixture-host/pidns:4026531836',4242,'2026-11-30 12:00:00.000000','2099-12-31 23:59:00.000000');
CREATE TABLE messages (
	id VARCHAR NOT NULL, 
	session_id VARCHAR NOT NULL, 
	seq INTEGER NOT NULL, 
	role VARCHAR NOT NULL, 
	content TEXT NOT NULL, 
	status VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	worker_id VARCHAR, 
	client_id VARCHAR, 
	finish_reason VARCHAR, 
	error TEXT, 
	stop_requested BOOLEAN DEFAULT 0 NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (session_id, seq), 
	UNIQUE (session_id, client_id), 
	CONSTRAINT message_role CHECK (role IN ('system', 'user', 'assistant')), 
	CONSTRAINT message_status CHECK (status IN ('in_progress', 'complete', 'incomplete', 'error')), 
	CONSTRAINT message_finish_reason CHECK (finish_reason IN ('completed', 'stopped', 'client_disconnected', 'server_stopped', 'error')), 
	FOREIGN KEY(session_id) REFERENCES sessions (id) ON DELETE CASCADE
);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(1,'2b0cc114-aca2-4029-9d22-425198775a01','26cea298-adaf-45b1-9b51-b8fbd0780bb9',1,'user','Where can I find a good café near the lake?','complete','2026-12-01 08:56:01.499937','2026-12-01 08:56:01.499937',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(2,'d3b00eda-27d3-44ca-aefe-7926d877fb4d','26cea298-adaf-45b1-9b51-b8fbd0780bb9',2,'assistant','Try the Café Schober, near the Grossmünster.','complete','2026-12-01 08:56:01.499937','2026-12-01 08:56:01.506201',NULL,NULL,'completed',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(3,'e0bc28d1-bcda-441f-bb04-00eb61a36228','26cea298-adaf-45b1-9b51-b8fbd0780bb9',3,'user','And a museum?','complete','2026-12-01 08:56:01.513112','2026-12-01 08:56:01.513112',NULL,'client-msg-1',NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(4,'294d4190-0ad7-462a-a4f3-aa6b731c2937','26cea298-adaf-45b1-9b51-b8fbd0780bb9',4,'assistant','The Kunsthaus; the Landesmuseum is near the station.','complete','2026-12-01 08:56:01.513112','2026-12-01 08:56:01.515276',NULL,NULL,'completed',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(5,'43343e3e-1631-4be2-a362-2550095030c6','b7ef5f2b-80c7-4ee4-b96f-54b84c24c222',1,'user','A snowflake ❄ in a renamed session','complete','2026-12-01 08:56:01.528465','2026-12-01 08:56:01.528465',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(6,'be2e5b58-9311-4607-9a53-bac74cf2e3d9','b7ef5f2b-80c7-4ee4-b96f-54b84c24c222',2,'assistant','The Kunsthaus; the Landesmuseum is near the station.','complete','2026-12-01 08:56:01.528465','2026-12-01 08:56:01.530675',NULL,NULL,'completed',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(7,'39c3137f-7ce8-415d-ac70-a69059e02fb0','b7913bc3-6d70-4fca-a447-245de46de8ec',1,'system','Be brief.','complete','2025-01-02 09:00:01.000000','2025-01-02 09:00:01.000000',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(8,'2a198300-6564-4b00-8c2f-83b94395b74f','b7913bc3-6d70-4fca-a447-245de46de8ec',2,'user','Naive question about Bayes','complete','2025-01-02 09:00:02.000000','2025-01-02 09:00:02.000000',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(9,'c89fa6ee-0b90-4e58-8301-9a4328dd1209','b7913bc3-6d70-4fca-a447-245de46de8ec',3,'assistant','Naïve Bayes assumes','incomplete','2025-01-02 09:00:03.000000','2025-01-02 09:00:03.000000',NULL,NULL,'server_stopped',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(10,'0804c77e-60e6-4696-9465-b8b221f61bea','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',1,'user','Stop this one','complete','2026-12-01 08:56:01.541598','2026-12-01 08:56:01.541598',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(11,'3143970e-b071-40fe-b7c0-3f7facd94c7d','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',2,'assistant','stopped half','incomplete','2026-12-01 08:56:01.541598','2026-12-01 08:56:01.543155',NULL,NULL,'stopped',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(12,'ca0d78db-aca6-4aea-875d-dcb607c08ae1','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',3,'user','I will close the tab','complete','2026-12-01 08:56:01.544006','2026-12-01 08:56:01.544006',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(13,'7ef6a9ed-891b-46ad-910b-c7a04519ff65','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',4,'assistant','partial','incomplete','2026-12-01 08:56:01.544006','2026-12-01 08:56:01.545344',NULL,NULL,'client_disconnected',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(14,'769f0d1e-a08d-4f18-acff-a57b320ec897','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',5,'user','The server restarts','complete','2026-12-01 08:56:01.546191','2026-12-01 08:56:01.546191',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(15,'2e19d19e-6817-4067-bbe3-d79627ae6638','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',6,'assistant','cut','incomplete','2026-12-01 08:56:01.546191','2026-12-01 08:56:01.547390',NULL,NULL,'server_stopped',NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(16,'22229575-a84d-4590-8761-af06cc78865f','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',7,'user','Fail please','complete','2026-12-01 08:56:01.548208','2026-12-01 08:56:01.548208',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(17,'ac989dba-f0eb-4f79-87bc-6e9fd3eca3ea','d0eb87bf-4316-4fc2-a149-075ee1ee9cc3',8,'assistant','','error','2026-12-01 08:56:01.548208','2026-12-01 08:56:01.549978',NULL,NULL,'error','the model server answered 429 Too Many Requests: slow down',0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(18,'e2eb3919-10c0-45b8-ab4b-2ab665cfbe9a','9769b7ff-f96c-41c1-b27c-87d0a1a2690d',1,'system','You explain statistics.','complete','2026-12-01 08:56:01.554850','2026-12-01 08:56:01.554850',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(19,'ddd64e25-6514-4c72-af64-9a1bd934c1f5','9769b7ff-f96c-41c1-b27c-87d0a1a2690d',2,'user','Explain naive Bayes','complete','2026-12-01 08:56:01.554850','2026-12-01 08:56:01.554850',NULL,'client-msg-2',NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(20,'ed9dbbbc-6371-4888-8685-ba2429847780','9769b7ff-f96c-41c1-b27c-87d0a1a2690d',3,'assistant','Naive Bayes is a classifier that','in_progress','2026-12-01 08:56:01.554850','2026-12-01 08:56:01.554850','0a0a0a0a-0000-4000-8000-000000000001',NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(21,'9c6fe33f-9bda-435c-aa2d-5ce3aa60264f','eada539c-0338-457c-ba16-68669a04189a',1,'user','How do I escape <script> tags in HTML?','complete','2026-12-01 08:56:01.715224','2026-12-01 08:56:01.715224',NULL,NULL,NULL,NULL,0);
INSERT INTO messages(rowid,id,session_id,seq,role,content,status,created_at,updated_at,worker_id,client_id,finish_reason,error,stop_requested) VALUES(22,'7cd2a753-a8eb-4400-8d76-bbed021982ae','eada539c-0338-457c-ba16-68669a04189a',2,'assistant','Use html.escape, ','error','2026-12-01 08:56:01.715224','2026-12-01 08:56:01.719842',NULL,NULL,'error','the model is overloaded',0);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','messages_search','messages_search',0,'CREATE VIRTUAL TABLE messages_search USING fts5(
    content, content=''messages'', tokenize=''unicode61 remove_diacritics 2''
)');
CREATE TABLE IF NOT EXISTS 'messages_search_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO messages_search_data VALUES(1,X'165b');
INSERT INTO messages_search_data VALUES(10,X'0000000002061500061101010101010201010301010401010501010000');
INSERT INTO messages_search_data VALUES(137438953473,X'0000002708306578706c61696e120203010a737461746973746963731202040103796f75120202040c0f');
INSERT INTO messages_search_data VALUES(274877906945,X'000000240630626179657313020401076578706c61696e13020201056e61697665130203040a0c');
INSERT INTO messages_search_data VALUES(412316860417,X'0000003d02306114020501056261796573140203010a636c61737369666965721402060102697314020401056e6169766514020201047468617414020704060a0f070a');
INSERT INTO messages_search_data VALUES(549755813889,X'000000460330646f15020301066573636170651502050103686f771502020203746d6c15020901016915020402016e150208010673637269707415020601047461677315020704070b080806060b');
INSERT INTO messages_search_data VALUES(687194767361,X'000000200730657363617065160204010468746d6c1602030103757365160202040b09');
INSERT INTO messages_search_data VALUES(2336462209025,X'000001d9023061010206020203020402050204626f757408020402026e6403020202067373756d65730902040105626179657308020501020302016507020202047269656607020301046361666501020801020403016e01020302046c6f73650c0204020275740f020201046661696c1002020203696e640102050104676f6f64010207020b726f73736d756e73746572020208010468616c660b02030101690102040b020202016e05020402017304020602020601096b756e73746861757304020302020301046c616b6501020b030a6e6465736d757365756d04020502020501066d757365756d03020401056e61697665080202010202020365617201020901020602020702020701036f6e650a020401077061727469616c0d020202056c6561736510020301087175657374696f6e080203010772656e616d656405020603067374617274730e020401077363686f626572020205020565727665720e020303057373696f6e05020702086e6f77666c616b650502030206746174696f6e04020902020903026f700a020205037065640b020201037461620c02060202686501020a0104030602060204060206020406060205020202030269730a020302027279020202010577686572650102020203696c6c0c0203040d09070b0d06090c06090709080910090906091109120b0d11080c0a0d0c0b0c0a0a0d0e0708081b07070a');
CREATE TABLE IF NOT EXISTS 'messages_search_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO messages_search_idx VALUES(1,X'',2);
INSERT INTO messages_search_idx VALUES(2,X'',2);
INSERT INTO messages_search_idx VALUES(3,X'',2);
INSERT INTO messages_search_idx VALUES(4,X'',2);
INSERT INTO messages_search_idx VALUES(5,X'',2);
INSERT INTO messages_search_idx VALUES(17,X'',2);
CREATE TABLE IF NOT EXISTS 'messages_search_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO messages_search_docsize VALUES(1,X'0a');
INSERT INTO messages_search_docsize VALUES(2,X'07');
INSERT INTO messages_search_docsize VALUES(3,X'03');
INSERT INTO messages_search_docsize VALUES(4,X'08');
INSERT INTO messages_search_docsize VALUES(5,X'06');
INSERT INTO messages_search_docsize VALUES(6,X'08');
INSERT INTO messages_search_docsize VALUES(7,X'02');
INSERT INTO messages_search_docsize VALUES(8,X'04');
INSERT INTO messages_search_docsize VALUES(9,X'03');
INSERT INTO messages_search_docsize VALUES(10,X'03');
INSERT INTO messages_search_docsize VALUES(11,X'02');
INSERT INTO messages_search_docsize VALUES(12,X'05');
INSERT INTO messages_search_docsize VALUES(13,X'01');
INSERT INTO messages_search_docsize VALUES(14,X'03');
INSERT INTO messages_search_docsize VALUES(15,X'01');
INSERT INTO messages_search_docsize VALUES(16,X'02');
INSERT INTO messages_search_docsize VALUES(17,X'00');
INSERT INTO messages_search_docsize VALUES(18,X'03');
INSERT INTO messages_search_docsize VALUES(19,X'03');
INSERT INTO messages_search_docsize VALUES(20,X'06');
INSERT INTO messages_search_docsize VALUES(21,X'08');
INSERT INTO messages_search_docsize VALUES(22,X'03');
CREATE TABLE IF NOT EXISTS 'messages_search_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO messages_search_config VALUES('version',4);
CREATE INDEX ix_sessions_activity ON sessions (activity_at, id);
CREATE INDEX ix_sessions_created ON sessions (created_at, id);
CREATE INDEX ix_messages_in_progress ON messages (worker_id) WHERE status = 'in_progress';
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END;
CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);
        INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
    END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);
    END;
PRAGMA writable_schema=OFF;
COMMIT;
