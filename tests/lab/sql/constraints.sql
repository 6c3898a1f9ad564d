-- constraints.sql: foreign keys and indexes of schema.sql, added by
-- tests/lab/seed after data.sql has filled the tables.
\set ON_ERROR_STOP on
ALTER TABLE person ADD FOREIGN KEY (company_id) REFERENCES company(id);
ALTER TABLE associate ADD FOREIGN KEY (person_id) REFERENCES person(id);
ALTER TABLE system_user ADD FOREIGN KEY (associate_id) REFERENCES associate(id);
ALTER TABLE scheduled_task ADD FOREIGN KEY (owner_id) REFERENCES associate(id);
ALTER TABLE mail_route ADD FOREIGN KEY (mailbox_id) REFERENCES mailbox(id);
ALTER TABLE app_authorization ADD FOREIGN KEY (authorized_by) REFERENCES associate(id);
ALTER TABLE appointment ADD FOREIGN KEY (company_id) REFERENCES company(id);
ALTER TABLE appointment ADD FOREIGN KEY (person_id) REFERENCES person(id);
ALTER TABLE appointment ADD FOREIGN KEY (associate_id) REFERENCES associate(id);
ALTER TABLE document ADD FOREIGN KEY (company_id) REFERENCES company(id);
ALTER TABLE document ADD FOREIGN KEY (person_id) REFERENCES person(id);
CREATE INDEX person_company_idx ON person(company_id);
CREATE INDEX person_email_idx ON person(lower(email));
CREATE INDEX appointment_person_idx ON appointment(person_id);
CREATE INDEX appointment_starts_idx ON appointment(starts_at);
CREATE INDEX document_company_idx ON document(company_id);
