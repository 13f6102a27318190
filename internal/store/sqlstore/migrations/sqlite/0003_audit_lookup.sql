-- Every backchannel request checks whether the user reported this client lately (deny and report):
-- the newest event of one type for one user and client. Without this index that lookup walks all
-- of the user's events.
CREATE INDEX audit_events_type_subject_client ON audit_events (event_type, subject, client_id, id);
