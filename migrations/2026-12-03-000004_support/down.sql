DROP TABLE support_forwards;
DROP TABLE support_messages;
DROP TABLE support_conversations;
