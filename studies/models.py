# Study, Series, Instance, DerivedImage and Report arrive with the studies issue.
