-- One JSON object: every table of the public schema -> "rows:md5 of all its rows".
-- prepare.yml records it before the run; the verifiers compare against it.
SELECT json_object_agg(
         t.table_name,
         (xpath('/row/d/text()', query_to_xml(format(
            'SELECT count(*) || '':'' || md5(coalesce(string_agg(x::text, ''|'' ORDER BY x::text), '''')) AS d FROM %I.%I x',
            t.table_schema, t.table_name), false, true, '')))[1]::text
         ORDER BY t.table_name)
FROM information_schema.tables t
WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE';
